package wire

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"sync"
	"testing"
)

// testKey is generated once per test binary: 2048-bit generation takes long
// enough (seconds under -race) that each test making its own would dominate
// the run.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func xorBytes(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

// nativeReference is mysql_native_password written out from its definition,
// one hash call per step, as an oracle independent of NativePasswordHash.
func nativeReference(scramble []byte, pw string) []byte {
	stage1 := sha1.Sum([]byte(pw))
	stage2 := sha1.Sum(stage1[:])
	mix := sha1.Sum(append(append([]byte(nil), scramble[:20]...), stage2[:]...))
	return xorBytes(stage1[:], mix[:])
}

func sha2Reference(scramble []byte, pw string) []byte {
	d1 := sha256.Sum256([]byte(pw))
	d2 := sha256.Sum256(d1[:])
	mix := sha256.Sum256(append(append([]byte(nil), d2[:]...), scramble[:20]...))
	return xorBytes(d1[:], mix[:])
}

func TestNativePasswordHash(t *testing.T) {
	for _, pw := range []string{"secret", "p@ss w0rd ünïcode", string(bytes.Repeat([]byte{'x'}, 200))} {
		got := NativePasswordHash(testScramble, pw)
		want := nativeReference(testScramble, pw)
		if !bytes.Equal(got, want) {
			t.Errorf("%q: got % x, want % x", pw, got, want)
		}
		if !VerifyNativePassword(testScramble, got, pw) {
			t.Errorf("%q: VerifyNativePassword rejects the right answer", pw)
		}
		if VerifyNativePassword(testScramble, got, pw+"x") {
			t.Errorf("%q: VerifyNativePassword accepts a wrong password", pw)
		}
		if VerifyNativePassword(testScramble, got[:19], pw) || VerifyNativePassword(testScramble, nil, pw) {
			t.Errorf("%q: VerifyNativePassword accepts a short answer", pw)
		}
		other := append([]byte(nil), testScramble...)
		other[19] ^= 1
		if VerifyNativePassword(other, got, pw) {
			t.Errorf("%q: answer to one scramble accepted for another", pw)
		}
	}
}

func TestCachingSHA2Hash(t *testing.T) {
	for _, pw := range []string{"secret", "p@ss w0rd ünïcode"} {
		got := CachingSHA2Hash(testScramble, pw)
		want := sha2Reference(testScramble, pw)
		if !bytes.Equal(got, want) {
			t.Errorf("%q: got % x, want % x", pw, got, want)
		}
		if !VerifyCachingSHA2(testScramble, got, pw) {
			t.Errorf("%q: VerifyCachingSHA2 rejects the right answer", pw)
		}
		if VerifyCachingSHA2(testScramble, got, pw+"x") || VerifyCachingSHA2(testScramble, got[:31], pw) {
			t.Errorf("%q: VerifyCachingSHA2 accepts a wrong answer", pw)
		}
		// The two plugins' answers are not interchangeable.
		if VerifyNativePassword(testScramble, got, pw) {
			t.Errorf("%q: SHA2 answer accepted as native", pw)
		}
	}
}

// Servers send the scramble with a trailing NUL (21 bytes); only the first
// 20 take part in the hash.
func TestHashIgnoresBytesAfterScramble(t *testing.T) {
	long := append(append([]byte(nil), testScramble...), 0)
	if !bytes.Equal(NativePasswordHash(long, "pw"), NativePasswordHash(testScramble, "pw")) {
		t.Error("native: 21-byte scramble hashes differently")
	}
	if !bytes.Equal(CachingSHA2Hash(long, "pw"), CachingSHA2Hash(testScramble, "pw")) {
		t.Error("sha2: 21-byte scramble hashes differently")
	}
}

func TestEmptyPassword(t *testing.T) {
	if NativePasswordHash(testScramble, "") != nil || CachingSHA2Hash(testScramble, "") != nil {
		t.Fatal("empty password must give an empty answer")
	}
	if !VerifyNativePassword(testScramble, nil, "") || !VerifyCachingSHA2(testScramble, []byte{}, "") {
		t.Error("empty answer rejected for an empty password")
	}
	if VerifyNativePassword(testScramble, nil, "secret") || VerifyCachingSHA2(testScramble, nil, "secret") {
		t.Error("empty answer accepted for a non-empty password")
	}
	if VerifyNativePassword(testScramble, NativePasswordHash(testScramble, "x"), "") {
		t.Error("non-empty answer accepted for an empty password")
	}
}

func TestNewScramble(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		s := NewScramble()
		if len(s) != 20 {
			t.Fatalf("len = %d", len(s))
		}
		if bytes.IndexByte(s, 0) >= 0 || bytes.IndexByte(s, '$') >= 0 {
			t.Fatalf("scramble % x holds NUL or '$'", s)
		}
		// It travels NUL-terminated in handshakes, so it must survive one.
		h := sampleHandshake()
		h.Scramble = s
		if got, ok := ParseHandshake(AppendHandshake(nil, h)); !ok || !bytes.Equal(got.Scramble, s) {
			t.Fatalf("scramble % x does not survive a handshake", s)
		}
		seen[string(s)] = true
	}
	if len(seen) < 200 {
		t.Errorf("only %d distinct scrambles in 200", len(seen))
	}
}

func TestEncryptDecryptPassword(t *testing.T) {
	key := testKey()
	for _, tc := range []struct {
		name     string
		scramble []byte
		pw       string
	}{
		{"typical", testScramble, "s3cret!"},
		{"empty password", testScramble, ""},
		{"longer than scramble", testScramble, string(bytes.Repeat([]byte("pw"), 40))},
		{"no scramble", nil, "plain"},
	} {
		enc, err := EncryptPassword(&key.PublicKey, tc.scramble, tc.pw)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(enc) != key.Size() {
			t.Errorf("%s: ciphertext %d bytes, want %d", tc.name, len(enc), key.Size())
		}
		got, err := DecryptPassword(key, tc.scramble, enc)
		if err != nil || got != tc.pw {
			t.Errorf("%s: DecryptPassword = %q, %v; want %q", tc.name, got, err, tc.pw)
		}
	}
}

func TestDecryptPasswordRejects(t *testing.T) {
	key := testKey()
	enc, err := EncryptPassword(&key.PublicKey, testScramble, "pw")
	if err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), enc...)
	tampered[10] ^= 1
	if _, err := DecryptPassword(key, testScramble, tampered); err == nil {
		t.Error("tampered ciphertext accepted")
	}
	if _, err := DecryptPassword(key, testScramble, []byte("short")); err == nil {
		t.Error("garbage ciphertext accepted")
	}
	// With the wrong scramble the NUL terminator comes out wrong.
	other := bytes.Repeat([]byte{0x55}, 20)
	if got, err := DecryptPassword(key, other, enc); err == nil && got == "pw" {
		t.Error("wrong scramble recovered the password")
	}
}

func TestPublicKeyPEMRoundTrip(t *testing.T) {
	key := testKey()
	p, err := PublicKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(p, []byte("-----BEGIN PUBLIC KEY-----\n")) {
		t.Errorf("PEM starts with %q", p[:min(len(p), 30)])
	}
	pub, err := ParsePublicKeyPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&key.PublicKey) {
		t.Error("parsed key differs")
	}
	// Servers may send the key NUL-terminated, as an AuthMoreData payload.
	if _, err := ParsePublicKeyPEM(append(p, 0)); err != nil {
		t.Errorf("with trailing NUL: %v", err)
	}
}

func TestParsePublicKeyPEMFormats(t *testing.T) {
	key := testKey()
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)})
	if pub, err := ParsePublicKeyPEM(pkcs1); err != nil || !pub.Equal(&key.PublicKey) {
		t.Errorf("PKCS#1: %v", err)
	}
	if _, err := ParsePublicKeyPEM([]byte("not a key")); err == nil {
		t.Error("non-PEM accepted")
	}
	bad := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("garbage")})
	if _, err := ParsePublicKeyPEM(bad); err == nil {
		t.Error("garbage DER accepted")
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParsePublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); err == nil {
		t.Error("EC key accepted")
	}
}
