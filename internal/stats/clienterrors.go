package stats

import (
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice-proxy/sluice/internal/session"
)

var (
	descClientErrors  = desc("sluice_client_errors_total", "Error packets sent to clients, by code and cause: \"server\" for a server's error passed on, else what made sluice send it (server_unreachable, no_primary, hold_timeout, primary_change, backend_lost, a login failure's cause, …).", "code", "cause")
	descLoginFailures = desc("sluice_client_login_failures_total", "Failed client logins by cause: bad_credentials, unknown_user, default_database, default_database_unavailable, too_many_connections, handshake_timeout, bad_handshake, client_left.", "cause")
)

var _ session.ErrorObserver = (*Stats)(nil)

type errKey struct {
	code  uint16
	cause string
}

// errCounts is a set of counters created on first use. Errors are rare
// next to statements, but an outage sends thousands a second, so a
// counter that exists is found without a lock.
type errCounts[K comparable] struct {
	m sync.Map // K -> *atomic.Uint64
}

func (c *errCounts[K]) add(k K) {
	v, ok := c.m.Load(k)
	if !ok {
		v, _ = c.m.LoadOrStore(k, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

func (c *errCounts[K]) each(fn func(K, uint64)) {
	c.m.Range(func(k, v any) bool {
		fn(k.(K), v.(*atomic.Uint64).Load())
		return true
	})
}

// ClientError counts an error packet sent to a client; the per-second
// series draws these, so that its errors are the errors clients saw.
func (st *Stats) ClientError(code uint16, cause string) {
	st.clientErrs.add(errKey{code, cause})
	st.series.addError(st.now().Unix())
}

// LoginFailed counts a failed login by cause (Login counts it in the
// total).
func (st *Stats) LoginFailed(cause string) {
	st.loginFails.add(cause)
}

// ClientErrors returns the errors sent to clients by "code/cause".
func (st *Stats) ClientErrors() map[string]uint64 {
	out := map[string]uint64{}
	st.clientErrs.each(func(k errKey, n uint64) { out[strconv.Itoa(int(k.code))+"/"+k.cause] = n })
	return out
}

// LoginFailures returns the failed logins by cause.
func (st *Stats) LoginFailures() map[string]uint64 {
	out := map[string]uint64{}
	st.loginFails.each(func(k string, n uint64) { out[k] = n })
	return out
}

func (st *Stats) collectClientErrors(m func(*prometheus.Desc, prometheus.ValueType, float64, ...string)) {
	type row struct {
		k errKey
		n uint64
	}
	var rows []row
	st.clientErrs.each(func(k errKey, n uint64) { rows = append(rows, row{k, n}) })
	slices.SortFunc(rows, func(a, b row) int {
		if a.k.code != b.k.code {
			return int(a.k.code) - int(b.k.code)
		}
		if a.k.cause < b.k.cause {
			return -1
		}
		return 1
	})
	for _, r := range rows {
		m(descClientErrors, counter, float64(r.n), strconv.Itoa(int(r.k.code)), r.k.cause)
	}
	fails := st.LoginFailures()
	for _, k := range sortedKeys(fails) {
		m(descLoginFailures, counter, float64(fails[k]), k)
	}
}
