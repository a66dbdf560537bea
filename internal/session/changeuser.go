package session

import (
	"context"
	"encoding/binary"
	"errors"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// changeUser implements COM_CHANGE_USER: authenticate as another user
// against the scramble of the initial handshake, then start the session
// afresh, as the server does.
func (s *Session) changeUser(ctx context.Context, pkt []byte) error {
	b := pkt[1:]
	user, n := nulString(b)
	if n < 0 {
		return s.fail(wire.Errorf(wire.ErrHandshake, "08S01", "malformed COM_CHANGE_USER"))
	}
	b = b[n:]
	var answer []byte
	if s.caps&wire.ClientSecureConnection != 0 {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return s.fail(wire.Errorf(wire.ErrHandshake, "08S01", "malformed COM_CHANGE_USER"))
		}
		answer = append([]byte(nil), b[1:1+int(b[0])]...)
		b = b[1+int(b[0]):]
	} else {
		a, k := nulString(b)
		if k < 0 {
			return s.fail(wire.Errorf(wire.ErrHandshake, "08S01", "malformed COM_CHANGE_USER"))
		}
		answer = append([]byte(nil), a...)
		b = b[k:]
	}
	db, k := nulString(b)
	if k < 0 {
		db, k = string(b), len(b)
	}
	b = b[k:]
	collation := s.eng.Collation()
	if len(b) >= 2 {
		collation = byte(binary.LittleEndian.Uint16(b))
		b = b[2:]
	}
	plugin := wire.NativePassword
	if s.caps&wire.ClientPluginAuth != 0 && len(b) > 0 {
		if p, k := nulString(b); k >= 0 {
			plugin = p
		}
	}
	if s.failedChangeUser >= maxFailedChangeUser {
		// MariaDB refuses COM_CHANGE_USER on a connection after three
		// failed attempts, with this error: a guard against guessing.
		return s.fail(wire.Errorf(wire.ErrUnknownCom, "08S01", "Unknown command"))
	}
	// The session is reset whether or not the change succeeds, as on the
	// server; a failed change keeps the connection, its user and schema.
	prevAccount, prevSchema := s.account, s.eng.Schema()
	s.eng.ResetConnection()
	s.eng.SetSchema("")
	acc, err := s.guardedAuthenticate(user, plugin, answer)
	if err != nil {
		return s.changeUserFailed(err, prevAccount, prevSchema)
	}
	s.account = acc
	s.eng.SetCollation(collation)
	if db != "" {
		if e := s.eng.UseSchema(ctx, db); e != nil {
			return s.changeUserFailed(s.loginError(e), prevAccount, prevSchema)
		}
	}
	return s.ok(0, 0)
}

// maxFailedChangeUser is MariaDB's limit of failed COM_CHANGE_USER per
// connection.
const maxFailedChangeUser = 3

// changeUserFailed goes on with the previous user and schema after the
// client was told why the change failed (err is the *wire.Error sent). Any
// other error means the client is gone and ends the session.
func (s *Session) changeUserFailed(err error, prev Account, schema string) error {
	var we *wire.Error
	if !errors.As(err, &we) {
		return err
	}
	s.failedChangeUser++
	s.account = prev
	s.eng.SetSchema(schema)
	return nil
}

// nulString reads a NUL-terminated string; k is -1 without a NUL.
func nulString(b []byte) (string, int) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), i + 1
		}
	}
	return "", -1
}
