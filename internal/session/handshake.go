package session

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// serverCaps are the capabilities sluice offers clients. Deprecate-EOF and
// session tracking are withheld so backend responses can be forwarded byte
// for byte (see backend.baseCaps); compression is not supported.
const serverCaps = wire.ClientLongPassword | wire.ClientFoundRows | wire.ClientLongFlag |
	wire.ClientConnectWithDB | wire.ClientNoSchema | wire.ClientODBC | wire.ClientLocalFiles |
	wire.ClientIgnoreSpace | wire.ClientProtocol41 | wire.ClientInteractive |
	wire.ClientIgnoreSIGPIPE | wire.ClientTransactions | wire.ClientReserved |
	wire.ClientSecureConnection | wire.ClientMultiStatements | wire.ClientMultiResults |
	wire.ClientPSMultiResults | wire.ClientPluginAuth | wire.ClientConnectAttrs |
	wire.ClientPluginAuthLenencClientData

// sha2Cache remembers users who completed caching_sha2_password's full
// authentication, as MySQL does, so later logins take the fast path.
var sha2Cache sync.Map // user name + password hash -> struct{}

func (s *Session) handshake(ctx context.Context) error {
	lim := s.homeRT.Limits
	s.c.SetReadTimeout(lim.Handshake)
	s.c.SetWriteTimeout(lim.Handshake)
	s.scramble = wire.NewScramble()
	caps := serverCaps
	tlsConf := s.home.TLSConfig()
	if tlsConf != nil {
		caps |= wire.ClientSSL
	}
	hs := wire.Handshake{
		ServerVersion: s.home.ServerVersion(), ConnectionID: s.ID, Scramble: s.scramble,
		Capabilities: caps, Collation: wire.DefaultCollation, Status: wire.StatusAutocommit,
		AuthPlugin: wire.NativePassword,
	}
	if err := s.c.WriteFlush(wire.AppendHandshake(nil, hs)); err != nil {
		return err
	}
	pkt, err := s.c.ReadPacket(64 << 10)
	if err != nil {
		return err
	}
	if wire.IsSSLRequest(pkt) {
		if tlsConf == nil {
			return s.loginError(wire.Errorf(wire.ErrHandshake, "08S01", "Bad handshake: TLS requested but not configured on sluice"))
		}
		// A client sends its ClientHello right after the SSLRequest without
		// waiting; whatever of it the packet reader already buffered must
		// reach the TLS handshake too.
		tc := tls.Server(readAhead(s.c), tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		s.c.Reset(tc)
		if pkt, err = s.c.ReadPacket(64 << 10); err != nil {
			return err
		}
	}
	resp, ok := wire.ParseHandshakeResponse(pkt)
	if !ok || resp.Capabilities&wire.ClientProtocol41 == 0 {
		return s.loginError(wire.Errorf(wire.ErrHandshake, "08S01", "Bad handshake"))
	}
	s.caps = resp.Capabilities & caps
	s.multiStmt = s.caps&wire.ClientMultiStatements != 0
	s.c.NoLocalInfile = s.caps&wire.ClientLocalFiles == 0
	acc, err := s.guardedAuthenticate(resp.User, resp.AuthPlugin, resp.AuthResponse)
	if err != nil {
		return err
	}
	s.account = acc
	s.eng.SetCollation(resp.Collation)
	if resp.Database != "" && s.caps&wire.ClientConnectWithDB != 0 {
		if e := s.eng.UseSchema(ctx, resp.Database); e != nil {
			s.loginCause = schemaLoginCause(e)
			return s.loginError(e)
		}
	}
	s.c.SetReadTimeout(0)
	return s.ok(0, 0)
}

// readAhead returns c's connection with the bytes c has buffered but not
// yet consumed put back in front.
func readAhead(c *wire.Conn) net.Conn {
	n := c.R.Buffered()
	if n == 0 {
		return c.NC
	}
	b, _ := c.R.Peek(n)
	return &prefixConn{Conn: c.NC, r: io.MultiReader(bytes.NewReader(append([]byte(nil), b...)), c.NC)}
}

// prefixConn is a net.Conn whose reads come from r.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (s *Session) loginError(e *wire.Error) error {
	if s.loginCause == "" {
		s.loginCause = LoginBadHandshake
	}
	s.countError(e.Code, s.loginCause)
	s.c.WriteError(e)
	return e
}

func (s *Session) clientHost() string {
	host, _, err := net.SplitHostPort(s.addr)
	if err != nil {
		return s.addr
	}
	return host
}

// guardedAuthenticate is authenticate behind the login throttle: a host or
// account over login.max_failures is refused before its password is
// checked, failures are counted and logged (rate-limited), a success
// resets the counts.
func (s *Session) guardedAuthenticate(user, plugin string, answer []byte) (Account, error) {
	g, host, now := s.home.Logins(), s.clientHost(), time.Now()
	if wait, byHost, blocked := g.Blocked(host, user, now); blocked {
		wait = max(wait.Round(100*time.Millisecond), 100*time.Millisecond)
		g.logFailure(s.log, host, user, "blocked", 0, now)
		if byHost {
			return Account{}, s.loginError(wire.Errorf(wire.ErrHostBlocked, "HY000",
				"Host '%s' is blocked for %s after too many failed logins in a row (sluice login.max_failures); try again later", host, wait))
		}
		return Account{}, s.loginError(wire.Errorf(wire.ErrUserBlocked, "HY000",
			"User '%s' is blocked for %s after too many failed logins in a row (sluice login.max_failures); try again later", cut(user, maxNameInMessage), wait))
	}
	acc, err := s.authenticate(user, plugin, answer)
	var we *wire.Error
	switch {
	case err == nil:
		g.Succeeded(host, user)
	case errors.As(err, &we) && we.Code == wire.ErrAccessDenied:
		_, known := s.home.Account(user)
		n := g.Failed(host, user, known, now)
		reason := "wrong password"
		if !known {
			reason = "unknown user"
		}
		g.logFailure(s.log, host, user, reason, n, now)
	}
	return acc, err
}

func (s *Session) accessDenied(user string, usedPassword bool) error {
	host := s.clientHost()
	user = cut(user, maxNameInMessage)
	if s.loginCause == "" {
		s.loginCause = LoginBadCredentials
	}
	yn := "NO"
	if usedPassword {
		yn = "YES"
	}
	return s.loginError(wire.Errorf(wire.ErrAccessDenied, "28000",
		"Access denied for user '%s'@'%s' (using password: %s)", user, host, yn))
}

// authenticate runs the password exchange for user. plugin and answer are
// what the client sent with its handshake response (or COM_CHANGE_USER).
func (s *Session) authenticate(user, plugin string, answer []byte) (Account, error) {
	acc, known := s.home.Account(user)
	s.loginCause = ""
	want := wire.NativePassword
	if known && acc.AuthPlugin != "" {
		want = acc.AuthPlugin
	}
	if plugin != want {
		// Ask the client to answer with the plugin this user needs.
		s.scramble = wire.NewScramble()
		sw := wire.AppendAuthSwitch(nil, wire.AuthSwitch{Plugin: want, Data: append(append([]byte(nil), s.scramble...), 0)})
		if err := s.c.WriteFlush(sw); err != nil {
			return acc, err
		}
		p, err := s.c.ReadPacket(64 << 10)
		if err != nil {
			return acc, err
		}
		answer = append([]byte(nil), p...)
	}
	if !known {
		s.loginCause = LoginUnknownUser
		// Unknown users get the same answer as wrong passwords, so the
		// error does not reveal which accounts exist.
		return acc, s.accessDenied(user, len(answer) > 0)
	}
	switch want {
	case wire.CachingSHA2Password:
		return acc, s.authSHA2(acc, answer)
	default:
		if acc.Password == "" && len(answer) == 0 {
			return acc, nil
		}
		if !wire.VerifyNativePassword(s.scramble, answer, acc.Password) {
			return acc, s.accessDenied(user, len(answer) > 0)
		}
		return acc, nil
	}
}

func (s *Session) authSHA2(acc Account, answer []byte) error {
	if acc.Password == "" {
		if len(answer) == 0 || (len(answer) == 1 && answer[0] == 0) {
			return nil
		}
		return s.accessDenied(acc.Name, true)
	}
	if !wire.VerifyCachingSHA2(s.scramble, answer, acc.Password) {
		return s.accessDenied(acc.Name, len(answer) > 0)
	}
	cacheKey := acc.Name + "\x00" + string(wire.CachingSHA2Hash(make([]byte, 20), acc.Password))
	if _, ok := sha2Cache.Load(cacheKey); ok {
		return s.c.WriteFlush([]byte{1, wire.SHA2FastAuthOK})
	}
	// First login since start: full authentication, as MySQL does, over
	// TLS in clear text or with the RSA key exchange.
	if err := s.c.WriteFlush([]byte{1, wire.SHA2FullAuth}); err != nil {
		return err
	}
	p, err := s.c.ReadPacket(64 << 10)
	if err != nil {
		return err
	}
	var password string
	if _, isTLS := s.c.NC.(*tls.Conn); isTLS {
		password = string(bytes.TrimRight(p, "\x00"))
	} else {
		if len(p) == 1 && p[0] == wire.SHA2RequestPubKey {
			key, pemKey, err := s.home.RSAKey()
			if err != nil {
				return s.loginError(wire.Errorf(wire.ErrHandshake, "08S01", "sluice has no RSA key: %v", err))
			}
			_ = key
			if err := s.c.WriteFlush(append([]byte{1}, pemKey...)); err != nil {
				return err
			}
			if p, err = s.c.ReadPacket(64 << 10); err != nil {
				return err
			}
		}
		key, _, err := s.home.RSAKey()
		if err != nil {
			return s.loginError(wire.Errorf(wire.ErrHandshake, "08S01", "sluice has no RSA key: %v", err))
		}
		password, err = wire.DecryptPassword(key, s.scramble, p)
		if err != nil {
			return s.accessDenied(acc.Name, true)
		}
	}
	if password != acc.Password {
		return s.accessDenied(acc.Name, true)
	}
	sha2Cache.Store(cacheKey, struct{}{})
	return nil
}

var errLogin = errors.New("login failed")
