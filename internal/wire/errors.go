package wire

import (
	"errors"
	"fmt"
)

// Error is a MySQL error as carried by an ERR packet. sluice sends its own
// errors with the same codes a MySQL server would use, so that client
// libraries and application retry logic recognise them.
type Error struct {
	Code    uint16
	State   string // five characters SQLSTATE
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("Error %d (%s): %s", e.Code, e.State, e.Message)
}

// Errorf builds an Error with a formatted message.
func Errorf(code uint16, state, format string, args ...any) *Error {
	return &Error{Code: code, State: state, Message: fmt.Sprintf(format, args...)}
}

// Error codes sluice sends itself.
const (
	ErrConCount            uint16 = 1040 // ER_CON_COUNT_ERROR: too many connections
	ErrHandshake           uint16 = 1043 // ER_HANDSHAKE_ERROR: bad handshake
	ErrDBAccessDenied      uint16 = 1044
	ErrAccessDenied        uint16 = 1045 // ER_ACCESS_DENIED_ERROR
	ErrNoDB                uint16 = 1046
	ErrUnknownCom          uint16 = 1047 // ER_UNKNOWN_COM_ERROR
	ErrBadDB               uint16 = 1049
	ErrParse               uint16 = 1064
	ErrNoSuchThread        uint16 = 1094 // ER_NO_SUCH_THREAD
	ErrKillDenied          uint16 = 1095 // ER_KILL_DENIED_ERROR
	ErrHostBlocked         uint16 = 1129 // ER_HOST_IS_BLOCKED: too many failed logins from the host
	ErrNetPacketTooLarge   uint16 = 1153 // ER_NET_PACKET_TOO_LARGE
	ErrNetRead             uint16 = 1158 // ER_NET_READ_ERROR: a malformed answer from a server
	ErrNetReadInterrupted  uint16 = 1159 // ER_NET_READ_INTERRUPTED
	ErrUnknownStmtHandler  uint16 = 1243 // ER_UNKNOWN_STMT_HANDLER
	ErrNotSupportedYet     uint16 = 1235 // ER_NOT_SUPPORTED_YET
	ErrQueryInterrupted    uint16 = 1317 // ER_QUERY_INTERRUPTED
	ErrReadOnlyTransaction uint16 = 1792 // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
	ErrConnectionKilled    uint16 = 1927 // ER_CONNECTION_KILLED
	ErrStatementTimeout    uint16 = 1969 // ER_STATEMENT_TIMEOUT
	// ErrLostConnection and ErrServerGone are client-library codes: a C
	// client (libmariadb, libmysqlclient) turns an ERR packet carrying a
	// code in 2000-2999 into 2027 "malformed packet". sluice never sends
	// them; it closes the client connection so the library reports its own.
	ErrLostConnection uint16 = 2013 // CR_SERVER_LOST
	ErrServerGone     uint16 = 2006 // CR_SERVER_GONE_ERROR
	ErrUserBlocked    uint16 = 4151 // ER_USER_IS_BLOCKED: too many failed logins for the account
	ErrUnavailable    uint16 = 9001 // sluice: no server can take this statement now
	ErrCausalTimeout  uint16 = 9002 // sluice: no replica applied the GTIDs a read needs within routing.causal_timeout (causal_fallback: error)
)

// ErrPacketTooLarge is returned when a logical packet exceeds the limit given
// to ReadPacket.
var ErrPacketTooLarge = errors.New("packet larger than max_allowed_packet")

// ErrMalformed is returned for packets that do not follow the protocol.
var ErrMalformed = errors.New("malformed packet")

// ErrSequence is returned when a packet's sequence id is not the expected one.
var ErrSequence = errors.New("packets out of order")
