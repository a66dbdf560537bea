package wire

import (
	"bytes"
	"encoding/binary"
)

// Handshake is the server's initial handshake (protocol 10).
type Handshake struct {
	ServerVersion string
	ConnectionID  uint32
	Scramble      []byte // 20 bytes
	Capabilities  uint32
	Collation     byte
	Status        uint16
	AuthPlugin    string
}

// AppendHandshake appends a HandshakeV10 payload.
func AppendHandshake(b []byte, h Handshake) []byte {
	b = append(b, 10)
	b = append(b, h.ServerVersion...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint32(b, h.ConnectionID)
	b = append(b, h.Scramble[:8]...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(h.Capabilities))
	b = append(b, h.Collation)
	b = binary.LittleEndian.AppendUint16(b, h.Status)
	b = binary.LittleEndian.AppendUint16(b, uint16(h.Capabilities>>16))
	b = append(b, byte(len(h.Scramble)+1))
	b = append(b, make([]byte, 10)...)
	b = append(b, h.Scramble[8:]...)
	b = append(b, 0)
	b = append(b, h.AuthPlugin...)
	return append(b, 0)
}

// ParseHandshake decodes a server's HandshakeV10.
func ParseHandshake(p []byte) (Handshake, bool) {
	var h Handshake
	if len(p) < 1 || p[0] != 10 {
		return h, false
	}
	b := p[1:]
	v, n := readNulString(b)
	h.ServerVersion = string(v)
	b = b[n:]
	if len(b) < 4+8+1+2 {
		return h, false
	}
	h.ConnectionID = binary.LittleEndian.Uint32(b)
	scramble := append([]byte(nil), b[4:12]...)
	b = b[13:]
	h.Capabilities = uint32(binary.LittleEndian.Uint16(b))
	b = b[2:]
	if len(b) >= 16 {
		h.Collation = b[0]
		h.Status = binary.LittleEndian.Uint16(b[1:])
		h.Capabilities |= uint32(binary.LittleEndian.Uint16(b[3:])) << 16
		authLen := int(b[5])
		b = b[16:]
		if h.Capabilities&ClientSecureConnection != 0 {
			n := max(13, authLen-8)
			if len(b) < n {
				n = len(b)
			}
			part := b[:n]
			b = b[n:]
			// The second part is NUL-terminated; the NUL is not scramble.
			if i := bytes.IndexByte(part, 0); i >= 0 {
				part = part[:i]
			}
			scramble = append(scramble, part...)
		}
		if h.Capabilities&ClientPluginAuth != 0 {
			name, _ := readNulString(b)
			h.AuthPlugin = string(name)
		}
	}
	h.Scramble = scramble
	return h, true
}

// HandshakeResponse is a client's HandshakeResponse41.
type HandshakeResponse struct {
	Capabilities uint32
	MaxPacket    uint32
	Collation    byte
	User         string
	AuthResponse []byte
	Database     string
	AuthPlugin   string
	Attributes   map[string]string
}

// IsSSLRequest reports whether p is the short SSLRequest packet.
func IsSSLRequest(p []byte) bool {
	return len(p) == 32 && binary.LittleEndian.Uint32(p)&ClientSSL != 0
}

// ParseHandshakeResponse decodes a HandshakeResponse41. Pre-4.1 clients are
// refused by the caller (ClientProtocol41 missing).
func ParseHandshakeResponse(p []byte) (HandshakeResponse, bool) {
	var r HandshakeResponse
	if len(p) < 32 {
		return r, false
	}
	r.Capabilities = binary.LittleEndian.Uint32(p)
	r.MaxPacket = binary.LittleEndian.Uint32(p[4:])
	r.Collation = p[8]
	b := p[32:]
	user, n := readNulString(b)
	if n > len(b) || n == len(user) { // no NUL: truncated
		return r, false
	}
	r.User = string(user)
	b = b[n:]
	switch {
	case r.Capabilities&ClientPluginAuthLenencClientData != 0:
		s, k, ok := ReadLenEncString(b)
		if !ok {
			return r, false
		}
		r.AuthResponse = append([]byte(nil), s...)
		b = b[k:]
	case r.Capabilities&ClientSecureConnection != 0:
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return r, false
		}
		r.AuthResponse = append([]byte(nil), b[1:1+int(b[0])]...)
		b = b[1+int(b[0]):]
	default:
		s, k := readNulString(b)
		r.AuthResponse = append([]byte(nil), s...)
		b = b[k:]
	}
	if r.Capabilities&ClientConnectWithDB != 0 && len(b) > 0 {
		db, k := readNulString(b)
		r.Database = string(db)
		b = b[k:]
	}
	if r.Capabilities&ClientPluginAuth != 0 && len(b) > 0 {
		name, k := readNulString(b)
		r.AuthPlugin = string(name)
		b = b[k:]
	}
	if r.Capabilities&ClientConnectAttrs != 0 && len(b) > 0 {
		total, k, _, ok := ReadLenEncInt(b)
		if !ok || uint64(len(b)-k) < total {
			return r, false
		}
		attrs := b[k : k+int(total)]
		r.Attributes = map[string]string{}
		for len(attrs) > 0 {
			key, k1, ok1 := ReadLenEncString(attrs)
			if !ok1 {
				return r, false
			}
			val, k2, ok2 := ReadLenEncString(attrs[k1:])
			if !ok2 {
				return r, false
			}
			if len(r.Attributes) < 64 {
				r.Attributes[string(key)] = string(val)
			}
			attrs = attrs[k1+k2:]
		}
	}
	return r, true
}

// AppendHandshakeResponse appends a HandshakeResponse41 payload (the client
// side, used for backend connections).
func AppendHandshakeResponse(b []byte, r HandshakeResponse) []byte {
	b = binary.LittleEndian.AppendUint32(b, r.Capabilities)
	b = binary.LittleEndian.AppendUint32(b, r.MaxPacket)
	b = append(b, r.Collation)
	b = append(b, make([]byte, 23)...)
	b = append(b, r.User...)
	b = append(b, 0)
	switch {
	case r.Capabilities&ClientPluginAuthLenencClientData != 0:
		b = AppendLenEncString(b, r.AuthResponse)
	case r.Capabilities&ClientSecureConnection != 0:
		b = append(b, byte(len(r.AuthResponse)))
		b = append(b, r.AuthResponse...)
	default:
		// Without either flag the server reads NUL-terminated auth data,
		// as ParseHandshakeResponse does.
		b = append(b, r.AuthResponse...)
		b = append(b, 0)
	}
	if r.Capabilities&ClientConnectWithDB != 0 {
		b = append(b, r.Database...)
		b = append(b, 0)
	}
	if r.Capabilities&ClientPluginAuth != 0 {
		b = append(b, r.AuthPlugin...)
		b = append(b, 0)
	}
	if r.Capabilities&ClientConnectAttrs != 0 {
		var attrs []byte
		for k, v := range r.Attributes {
			attrs = AppendLenEncString(attrs, []byte(k))
			attrs = AppendLenEncString(attrs, []byte(v))
		}
		b = AppendLenEncString(b, attrs)
	}
	return b
}

// AppendSSLRequest appends the short packet that asks the server for TLS.
func AppendSSLRequest(b []byte, caps uint32, collation byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, caps|ClientSSL)
	b = binary.LittleEndian.AppendUint32(b, MaxPayload)
	b = append(b, collation)
	return append(b, make([]byte, 23)...)
}

// AuthSwitch is an AuthSwitchRequest.
type AuthSwitch struct {
	Plugin string
	Data   []byte
}

// AppendAuthSwitch appends an AuthSwitchRequest payload.
func AppendAuthSwitch(b []byte, s AuthSwitch) []byte {
	b = append(b, iAuthSwitch)
	b = append(b, s.Plugin...)
	b = append(b, 0)
	return append(b, s.Data...)
}

// ParseAuthSwitch decodes an AuthSwitchRequest.
func ParseAuthSwitch(p []byte) (AuthSwitch, bool) {
	if len(p) < 2 || p[0] != iAuthSwitch {
		return AuthSwitch{}, false
	}
	name, n := readNulString(p[1:])
	data := p[1+n:]
	// The scramble is sent NUL-terminated.
	if len(data) > 0 && data[len(data)-1] == 0 {
		data = data[:len(data)-1]
	}
	return AuthSwitch{Plugin: string(name), Data: append([]byte(nil), data...)}, true
}

// IsAuthMoreData reports whether p is an AuthMoreData packet.
func IsAuthMoreData(p []byte) bool { return len(p) > 0 && p[0] == iAuthMore }
