package session

import (
	"errors"
	"io"
	"net"
	"strings"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// ErrorObserver is implemented by an Observer that counts every error
// packet sent to a client, by code and cause, and failed logins by cause.
// Calls are made on the session's goroutine; they must not block.
type ErrorObserver interface {
	ClientError(code uint16, cause string)
	LoginFailed(cause string)
}

// Causes of errors sent to clients. The server's own errors, forwarded
// unchanged, are CauseServer; the others are sluice's.
const (
	CauseServer        = "server"
	CauseUnreachable   = "server_unreachable" // 9001: cannot reach the server chosen
	CauseNoPrimary     = "no_primary"         // 9001: no primary (none, refused failover, fenced)
	CauseHoldTimeout   = "hold_timeout"       // 9001: writes held longer than failover.hold_timeout
	CauseNoReplica     = "no_replica"         // 9001: no replica with read_fallback: error
	CauseMaintenance   = "maintenance"        // 9001: the session's server was put in maintenance
	CauseUnavailable   = "unavailable"        // 9001: any other
	CauseCausalTimeout = "causal_timeout"     // 9002
	CausePrimaryChange = "primary_change"     // 1927: cut by a switchover or failover
	CauseTimeout       = "statement_timeout"  // 1969
	CauseBackendLost   = "backend_lost"       // 2013
	CausePoolFull      = "too_many_connections"
	CauseClient        = "client_request" // the client's command was refused (syntax, unsupported, unknown id)

	// Login failures.
	LoginBadCredentials   = "bad_credentials"
	LoginUnknownUser      = "unknown_user"
	LoginDefaultDatabase  = "default_database"             // the server refused it (unknown, access denied)
	LoginDatabaseDown     = "default_database_unavailable" // no server could check it
	LoginTooManyConns     = "too_many_connections"
	LoginHandshakeTimeout = "handshake_timeout"
	LoginBadHandshake     = "bad_handshake"
	LoginClientLeft       = "client_left"
)

// errCause classifies an error sluice made itself.
func errCause(e *wire.Error) string {
	switch e.Code {
	case wire.ErrUnavailable:
		m := e.Message
		switch {
		case strings.Contains(m, "longer than failover.hold_timeout"):
			return CauseHoldTimeout
		case strings.Contains(m, "cannot reach"):
			return CauseUnreachable
		case strings.Contains(m, "maintenance"):
			return CauseMaintenance
		case strings.Contains(m, "primary"):
			return CauseNoPrimary
		case strings.Contains(m, "replica"):
			return CauseNoReplica
		}
		return CauseUnavailable
	case wire.ErrCausalTimeout:
		return CauseCausalTimeout
	case wire.ErrConnectionKilled:
		return CausePrimaryChange
	case wire.ErrStatementTimeout:
		return CauseTimeout
	case wire.ErrLostConnection:
		return CauseBackendLost
	case wire.ErrConCount:
		return CausePoolFull
	case wire.ErrHandshake, wire.ErrNotSupportedYet, wire.ErrParse, wire.ErrUnknownCom, wire.ErrNetPacketTooLarge,
		wire.ErrAccessDenied, wire.ErrNoSuchThread, wire.ErrKillDenied, wire.ErrUnknownStmtHandler:
		return CauseClient
	}
	// Anything else came from a server (a schema it refused, a prepare
	// error) and is passed on.
	return CauseServer
}

// countError reports an error packet sent to the client.
func (s *client) countError(code uint16, cause string) {
	if o, ok := s.homeRT.Observer.(ErrorObserver); ok {
		o.ClientError(code, cause)
	}
}

// loginCauseOf is why a login failed: the cause noted when sluice refused
// it, else what the connection's error says.
func (s *Session) loginCauseOf(err error) string {
	if s.loginCause != "" {
		return s.loginCause
	}
	var we *wire.Error
	var ne net.Error
	switch {
	case errors.As(err, &we):
		if we.Code == wire.ErrConCount {
			return LoginTooManyConns
		}
		return LoginBadHandshake
	case errors.As(err, &ne) && ne.Timeout():
		return LoginHandshakeTimeout
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		return LoginClientLeft
	}
	return LoginClientLeft
}

// schemaLoginCause is why a login's default database was refused.
func schemaLoginCause(e *wire.Error) string {
	switch e.Code {
	case wire.ErrConCount:
		return LoginTooManyConns
	case wire.ErrUnavailable, wire.ErrLostConnection, wire.ErrStatementTimeout, wire.ErrConnectionKilled:
		return LoginDatabaseDown
	}
	return LoginDefaultDatabase
}

// loginFailed reports a failed login.
func (s *Session) loginFailed(err error) {
	if o, ok := s.homeRT.Observer.(ErrorObserver); ok {
		o.LoginFailed(s.loginCauseOf(err))
	}
}
