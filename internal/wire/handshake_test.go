package wire

import (
	"bytes"
	"encoding/hex"
	"maps"
	"strings"
	"testing"
)

var testScramble = []byte{
	0x01, 0x7f, 0x10, 0x22, 0x33, 0x44, 0x55, 0x66,
	0x77, 0x11, 0x3a, 0x5b, 0x6c, 0x7d, 0x0e, 0x1f,
	0x20, 0x31, 0x42, 0x53,
}

func sampleHandshake() Handshake {
	return Handshake{
		ServerVersion: "8.0.36-sluice",
		ConnectionID:  0xdeadbeef,
		Scramble:      testScramble,
		Capabilities: ClientLongPassword | ClientProtocol41 | ClientSecureConnection | ClientPluginAuth |
			ClientPluginAuthLenencClientData | ClientConnectAttrs | ClientSSL | ClientMultiResults,
		Collation:  DefaultCollation,
		Status:     StatusAutocommit,
		AuthPlugin: CachingSHA2Password,
	}
}

func TestHandshakeRoundTrip(t *testing.T) {
	for _, plugin := range []string{CachingSHA2Password, NativePassword} {
		h := sampleHandshake()
		h.AuthPlugin = plugin
		got, ok := ParseHandshake(AppendHandshake(nil, h))
		if !ok {
			t.Fatal("ParseHandshake ok = false")
		}
		if !handshakeEqual(got, h) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, h)
		}
	}
}

func handshakeEqual(a, b Handshake) bool {
	return a.ServerVersion == b.ServerVersion && a.ConnectionID == b.ConnectionID &&
		bytes.Equal(a.Scramble, b.Scramble) && a.Capabilities == b.Capabilities &&
		a.Collation == b.Collation && a.Status == b.Status && a.AuthPlugin == b.AuthPlugin
}

// The HandshakeV10 example of the MySQL protocol documentation: a 5.5 server
// with CLIENT_SECURE_CONNECTION but no plugin auth and auth-data length 0,
// where the second scramble part is still 13 bytes.
func TestParseHandshakeDocumentedExample(t *testing.T) {
	p := mustHex(t, "0a352e352e322d6d32000b00000064764840492d434a00fff70802000000"+
		"00000000000000000000002a34647c635a776b345e5d3a00")
	h, ok := ParseHandshake(p)
	if !ok {
		t.Fatal("ok = false")
	}
	want := Handshake{
		ServerVersion: "5.5.2-m2", ConnectionID: 11, Scramble: []byte("dvH@I-CJ*4d|cZwk4^]:"),
		Capabilities: 0xf7ff, Collation: 8, Status: StatusAutocommit,
	}
	if !handshakeEqual(h, want) {
		t.Errorf("got %+v\nwant %+v", h, want)
	}
}

func TestParseHandshakeTruncated(t *testing.T) {
	full := AppendHandshake(nil, sampleHandshake())
	// protocol version, version string and NUL, connection id, 8 scramble
	// bytes, filler, lower capabilities: anything shorter is unusable.
	minLen := 1 + len("8.0.36-sluice") + 1 + 4 + 8 + 1 + 2
	for i := range len(full) {
		h, ok := ParseHandshake(full[:i])
		if i < minLen && ok {
			t.Errorf("prefix %d: ok = true", i)
		}
		// Later cuts may be accepted (older servers end there), but what is
		// returned must be a prefix of the truth, never garbage.
		if ok && !bytes.HasPrefix(testScramble, h.Scramble) {
			t.Errorf("prefix %d: scramble % x is not a prefix of the real one", i, h.Scramble)
		}
		if ok && !strings.HasPrefix(CachingSHA2Password, h.AuthPlugin) {
			t.Errorf("prefix %d: plugin %q", i, h.AuthPlugin)
		}
	}
	for _, p := range [][]byte{nil, {9}, {10}, {11, 'x', 0}} {
		if _, ok := ParseHandshake(p); ok {
			t.Errorf("ParseHandshake(% x) ok = true", p)
		}
	}
}

// responseCases are handshake responses as real clients send them: the
// capability combinations differ in how the auth data is framed and which
// optional fields follow.
func responseCases() []HandshakeResponse {
	auth20 := bytes.Repeat([]byte{0xab}, 20)
	base := ClientProtocol41 | ClientLongPassword | ClientTransactions | ClientMultiResults
	return []HandshakeResponse{
		{ // libmysqlclient 8.0: lenenc auth data, db, plugin, attributes
			Capabilities: base | ClientSecureConnection | ClientPluginAuth | ClientPluginAuthLenencClientData |
				ClientConnectWithDB | ClientConnectAttrs,
			MaxPacket: 1 << 24, Collation: 255, User: "app", AuthResponse: bytes.Repeat([]byte{0xcd}, 32),
			Database: "shop", AuthPlugin: CachingSHA2Password,
			Attributes: map[string]string{"_client_name": "libmysql", "_os": "Linux", "program_name": "mysql"},
		},
		{ // secure connection with a 1-byte auth length, no db, plugin
			Capabilities: base | ClientSecureConnection | ClientPluginAuth,
			MaxPacket:    MaxPayload, Collation: 33, User: "root", AuthResponse: auth20, AuthPlugin: NativePassword,
		},
		{ // secure connection, db but no plugin
			Capabilities: base | ClientSecureConnection | ClientConnectWithDB,
			MaxPacket:    1 << 30, Collation: 8, User: "u", AuthResponse: auth20, Database: "test",
		},
		{ // empty password: zero-length auth data
			Capabilities: base | ClientSecureConnection | ClientPluginAuth | ClientPluginAuthLenencClientData,
			User:         "nopass", AuthPlugin: NativePassword,
		},
		{ // lenenc auth data longer than 250 bytes
			Capabilities: base | ClientSecureConnection | ClientPluginAuthLenencClientData,
			User:         "rsa", AuthResponse: bytes.Repeat([]byte{0x5a}, 256),
		},
		{ // attributes with empty values, without plugin
			Capabilities: base | ClientSecureConnection | ClientConnectAttrs,
			User:         "a", AuthResponse: auth20, Attributes: map[string]string{"k": "", "": "v"},
		},
		{ // connect attrs flag with no attributes
			Capabilities: base | ClientSecureConnection | ClientConnectAttrs | ClientPluginAuth,
			User:         "a", AuthResponse: auth20, AuthPlugin: NativePassword, Attributes: map[string]string{},
		},
		{ // empty user name and database
			Capabilities: base | ClientSecureConnection | ClientConnectWithDB | ClientPluginAuth,
			AuthResponse: auth20, AuthPlugin: NativePassword,
		},
		{ // pre-secure-connection clients send NUL-terminated auth data
			Capabilities: base | ClientConnectWithDB,
			User:         "old", AuthResponse: []byte("12345678"), Database: "db",
		},
	}
}

func responseEqual(a, b HandshakeResponse) bool {
	return a.Capabilities == b.Capabilities && a.MaxPacket == b.MaxPacket && a.Collation == b.Collation &&
		a.User == b.User && bytes.Equal(a.AuthResponse, b.AuthResponse) && a.Database == b.Database &&
		a.AuthPlugin == b.AuthPlugin && maps.Equal(a.Attributes, b.Attributes)
}

func TestHandshakeResponseRoundTrip(t *testing.T) {
	for i, r := range responseCases() {
		p := AppendHandshakeResponse(nil, r)
		got, ok := ParseHandshakeResponse(p)
		if !ok {
			t.Errorf("case %d: ok = false for % x", i, p)
			continue
		}
		if !responseEqual(got, r) {
			t.Errorf("case %d:\n got %+v\nwant %+v", i, got, r)
		}
		if IsSSLRequest(p) {
			t.Errorf("case %d: IsSSLRequest = true for a full response", i)
		}
	}
}

// The HandshakeResponse41 example of the MySQL protocol documentation, as
// bytes rather than built by AppendHandshakeResponse.
func TestParseHandshakeResponseDocumentedExample(t *testing.T) {
	p := mustHex(t, "8da60f00000000010800000000000000000000000000000000000000000000007061"+
		"6d0014ab09eef6bcb1323e61143865c0991d957d75d447746573740"+
		"06d7973716c5f6e61746976655f70617373776f726400")
	r, ok := ParseHandshakeResponse(p)
	if !ok {
		t.Fatal("ok = false")
	}
	want := HandshakeResponse{
		Capabilities: 0x000fa68d, MaxPacket: 1 << 24, Collation: 8, User: "pam",
		AuthResponse: mustHex(t, "ab09eef6bcb1323e61143865c0991d957d75d447"),
		Database:     "test", AuthPlugin: NativePassword,
	}
	if !responseEqual(r, want) {
		t.Errorf("got %+v\nwant %+v", r, want)
	}
}

func TestParseHandshakeResponseTruncated(t *testing.T) {
	for i, r := range responseCases() {
		full := AppendHandshakeResponse(nil, r)
		// The fixed part, the user name and the auth data are mandatory.
		required := 32 + len(r.User) + 1
		switch {
		case r.Capabilities&ClientPluginAuthLenencClientData != 0:
			required += len(AppendLenEncInt(nil, uint64(len(r.AuthResponse)))) + len(r.AuthResponse)
		case r.Capabilities&ClientSecureConnection != 0:
			required += 1 + len(r.AuthResponse)
		}
		// NUL-terminated auth data (pre-4.1.1 clients) cannot tell a cut
		// from the end of the packet; the answer then fails verification.
		lengthPrefixed := r.Capabilities&(ClientPluginAuthLenencClientData|ClientSecureConnection) != 0
		for cut := range len(full) {
			got, ok := ParseHandshakeResponse(full[:cut])
			if cut < required && ok {
				t.Errorf("case %d: %d-byte prefix (of %d required) ok = true", i, cut, required)
			}
			if !ok {
				continue
			}
			// Optional trailing fields may be cut, but what is reported must
			// be a prefix of what was sent.
			if !strings.HasPrefix(r.Database, got.Database) || !strings.HasPrefix(r.AuthPlugin, got.AuthPlugin) ||
				got.User != r.User || !bytes.HasPrefix(r.AuthResponse, got.AuthResponse) ||
				(lengthPrefixed && !bytes.Equal(got.AuthResponse, r.AuthResponse)) {
				t.Errorf("case %d: %d-byte prefix parsed as %+v", i, cut, got)
			}
		}
	}
}

func TestParseHandshakeResponseAttributeLimit(t *testing.T) {
	attrs := map[string]string{}
	for i := range 100 {
		attrs[strings.Repeat("k", i+1)] = "v"
	}
	r := HandshakeResponse{
		Capabilities: ClientProtocol41 | ClientSecureConnection | ClientConnectAttrs,
		User:         "u", Attributes: attrs,
	}
	got, ok := ParseHandshakeResponse(AppendHandshakeResponse(nil, r))
	if !ok {
		t.Fatal("ok = false")
	}
	// A client must not be able to make sluice keep an unbounded map.
	if len(got.Attributes) != 64 {
		t.Errorf("kept %d attributes, want 64", len(got.Attributes))
	}
}

func TestParseHandshakeResponseBadAttributes(t *testing.T) {
	caps := ClientProtocol41 | ClientSecureConnection | ClientConnectAttrs
	head := AppendHandshakeResponse(nil, HandshakeResponse{Capabilities: caps &^ ClientConnectAttrs, User: "u"})
	head[2] |= byte(ClientConnectAttrs >> 16)
	tests := map[string][]byte{
		"total beyond packet":  {0x10, 1, 'k'},
		"key beyond total":     {0x02, 0x05, 'k'},
		"value missing":        {0x02, 0x01, 'k'},
		"0xff length":          {0x01, 0xff},
		"lenenc total cut off": {0xfc, 0x01},
	}
	for name, tail := range tests {
		if _, ok := ParseHandshakeResponse(append(append([]byte(nil), head...), tail...)); ok {
			t.Errorf("%s: ok = true", name)
		}
	}
}

func TestSSLRequest(t *testing.T) {
	p := AppendSSLRequest(nil, ClientProtocol41|ClientSecureConnection, DefaultCollation)
	if len(p) != 32 || !IsSSLRequest(p) {
		t.Fatalf("AppendSSLRequest = %d bytes, IsSSLRequest = %v", len(p), IsSSLRequest(p))
	}
	// It is also the fixed head of the full response that follows the TLS
	// handshake.
	r, ok := ParseHandshakeResponse(append(p, "user\x00\x00"...))
	if !ok || r.Capabilities&ClientSSL == 0 || r.MaxPacket != MaxPayload || r.Collation != DefaultCollation {
		t.Errorf("parsed as %+v, %v", r, ok)
	}
	noSSL := append([]byte(nil), p...)
	noSSL[1] &^= byte(ClientSSL >> 8)
	if IsSSLRequest(noSSL) {
		t.Error("IsSSLRequest without CLIENT_SSL = true")
	}
	if IsSSLRequest(p[:31]) || IsSSLRequest(append(p, 0)) {
		t.Error("IsSSLRequest accepts a packet that is not 32 bytes")
	}
}

func TestAuthSwitch(t *testing.T) {
	s := AuthSwitch{Plugin: NativePassword, Data: testScramble}
	// Servers send the scramble NUL-terminated; the NUL is not scramble.
	p := append(AppendAuthSwitch(nil, s), 0)
	got, ok := ParseAuthSwitch(p)
	if !ok || got.Plugin != s.Plugin || !bytes.Equal(got.Data, s.Data) {
		t.Errorf("ParseAuthSwitch = %+v, %v", got, ok)
	}
	// The result must not alias the packet, which the Conn reuses.
	p[len(p)-2] ^= 0xff
	if !bytes.Equal(got.Data, s.Data) {
		t.Error("AuthSwitch.Data aliases the packet")
	}
	for _, bad := range [][]byte{nil, {0xfe}, {0x00, 'x'}} {
		if _, ok := ParseAuthSwitch(bad); ok {
			t.Errorf("ParseAuthSwitch(% x) ok = true", bad)
		}
	}
	if got, ok := ParseAuthSwitch([]byte{0xfe, 'p'}); !ok || got.Plugin != "p" || len(got.Data) != 0 {
		t.Errorf("plugin without data: %+v, %v", got, ok)
	}
	if !IsAuthMoreData([]byte{0x01, SHA2FastAuthOK}) || IsAuthMoreData(nil) || IsAuthMoreData([]byte{0x00}) {
		t.Error("IsAuthMoreData wrong")
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
