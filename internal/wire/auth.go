package wire

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
)

// NewScramble returns 20 random bytes usable as an authentication scramble:
// no NUL and no '$' bytes, which some clients mishandle.
func NewScramble() []byte {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	for i := range b {
		b[i] = b[i]&0x7f | 0x01
		if b[i] == '$' {
			b[i] = '%'
		}
	}
	return b
}

// NativePasswordHash is the client's answer for mysql_native_password:
// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
func NativePasswordHash(scramble []byte, password string) []byte {
	if password == "" {
		return nil
	}
	h1 := sha1.Sum([]byte(password))
	h2 := sha1.Sum(h1[:])
	h := sha1.New()
	h.Write(scramble[:20])
	h.Write(h2[:])
	h3 := h.Sum(nil)
	for i := range h3 {
		h3[i] ^= h1[i]
	}
	return h3
}

// CachingSHA2Hash is the client's fast-path answer for caching_sha2_password:
// SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble).
func CachingSHA2Hash(scramble []byte, password string) []byte {
	if password == "" {
		return nil
	}
	h1 := sha256.Sum256([]byte(password))
	h2 := sha256.Sum256(h1[:])
	h := sha256.New()
	h.Write(h2[:])
	h.Write(scramble[:20])
	h3 := h.Sum(nil)
	for i := range h3 {
		h3[i] ^= h1[i]
	}
	return h3
}

// VerifyNativePassword checks a mysql_native_password answer. sluice knows
// the plain password, so it recomputes the answer and compares in constant
// time.
func VerifyNativePassword(scramble, answer []byte, password string) bool {
	return subtle.ConstantTimeCompare(NativePasswordHash(scramble, password), answer) == 1
}

// VerifyCachingSHA2 checks a caching_sha2_password fast-path answer.
func VerifyCachingSHA2(scramble, answer []byte, password string) bool {
	return subtle.ConstantTimeCompare(CachingSHA2Hash(scramble, password), answer) == 1
}

// caching_sha2_password AuthMoreData bytes.
const (
	SHA2FastAuthOK    byte = 3
	SHA2FullAuth      byte = 4
	SHA2RequestPubKey byte = 2
)

// EncryptPassword encrypts (password + NUL) XOR scramble with the server's
// RSA public key, as caching_sha2_password's full authentication expects
// without TLS.
func EncryptPassword(pub *rsa.PublicKey, scramble []byte, password string) ([]byte, error) {
	plain := xorScramble(append([]byte(password), 0), scramble)
	return rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, plain, nil)
}

// DecryptPassword reverses EncryptPassword on the server side.
func DecryptPassword(key *rsa.PrivateKey, scramble, data []byte) (string, error) {
	plain, err := rsa.DecryptOAEP(sha1.New(), nil, key, data, nil)
	if err != nil {
		return "", err
	}
	plain = xorScramble(plain, scramble)
	if len(plain) == 0 || plain[len(plain)-1] != 0 {
		return "", errors.New("decrypted password is not NUL-terminated")
	}
	return string(plain[:len(plain)-1]), nil
}

func xorScramble(b, scramble []byte) []byte {
	if len(scramble) == 0 {
		return b
	}
	for i := range b {
		b[i] ^= scramble[i%len(scramble)]
	}
	return b
}

// PublicKeyPEM encodes key's public half as PEM, as sent to clients that ask
// for it.
func PublicKeyPEM(key *rsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKeyPEM decodes a PEM public key sent by a server.
func ParsePublicKeyPEM(b []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM data in server public key")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		if rk, err2 := x509.ParsePKCS1PublicKey(block.Bytes); err2 == nil {
			return rk, nil
		}
		return nil, err
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("server public key is not RSA")
	}
	return rk, nil
}
