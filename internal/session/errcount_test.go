package session

import (
	"testing"

	"github.com/sluice-proxy/sluice/internal/wire"
)

func TestErrCause(t *testing.T) {
	cases := []struct {
		e    *wire.Error
		want string
	}{
		{wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: cannot reach db1: connect: connection refused"), CauseUnreachable},
		{wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: writes held for a primary change (x) longer than failover.hold_timeout; try again"), CauseHoldTimeout},
		{wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: no primary: primary db1 is lost; automatic failover refused"), CauseNoPrimary},
		{wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: no replica can take reads"), CauseNoReplica},
		{wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: server db2 was put in maintenance"), CauseMaintenance},
		{wire.Errorf(wire.ErrConnectionKilled, "70100", "cut"), CausePrimaryChange},
		{wire.Errorf(wire.ErrLostConnection, "HY000", "lost"), CauseBackendLost},
		{wire.Errorf(wire.ErrStatementTimeout, "70100", "slow"), CauseTimeout},
		{wire.Errorf(wire.ErrConCount, "08004", "full"), CausePoolFull},
		{wire.Errorf(wire.ErrCausalTimeout, "HY000", "gtid"), CauseCausalTimeout},
		{wire.Errorf(wire.ErrUnknownCom, "08S01", "Unknown command"), CauseClient},
		{wire.Errorf(1049, "42000", "Unknown database 'x'"), CauseServer},
	}
	for _, c := range cases {
		if got := errCause(c.e); got != c.want {
			t.Errorf("%d %q: cause %q, want %q", c.e.Code, c.e.Message, got, c.want)
		}
	}
}

func TestSchemaLoginCause(t *testing.T) {
	for code, want := range map[uint16]string{
		1049: LoginDefaultDatabase, 1044: LoginDefaultDatabase,
		wire.ErrUnavailable: LoginDatabaseDown, wire.ErrLostConnection: LoginDatabaseDown,
		wire.ErrConCount: LoginTooManyConns,
	} {
		if got := schemaLoginCause(wire.Errorf(code, "HY000", "x")); got != want {
			t.Errorf("%d: %q, want %q", code, got, want)
		}
	}
}
