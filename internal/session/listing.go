package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/backend"
	"github.com/sluice-proxy/sluice/internal/placement"
	"github.com/sluice-proxy/sluice/internal/router"
	"github.com/sluice-proxy/sluice/internal/sqlscan"
	"github.com/sluice-proxy/sluice/internal/wire"
)

// listAcross answers SHOW DATABASES, and SHOW TABLES of a database whose
// tables live on several clusters, as one server would: with the names
// every cluster holding them lists, each cluster contributing only what
// the placement says it owns. So a database or table a move left on its
// source until cleanup is listed once, at its owner, and one that exists
// on a server but that no statement through sluice would reach is not
// listed. Any other listing (one cluster, information_schema) answers for
// the cluster the statement goes to. A cluster that cannot answer fails
// the statement: a partial list would look whole.
func (s *engine) listAcross(ctx context.Context, pl Placer, m *placement.Map, sql []byte, st sqlscan.Statement) (handled bool, err error) {
	if st.Kind != sqlscan.KindShow || st.Flags&sqlscan.FlagMulti != 0 {
		return false, nil
	}
	l, ok := sqlscan.ShowListing(sql)
	if !ok {
		return false, nil
	}
	db := l.DB
	var clusters []string
	if l.Tables {
		if db == "" {
			db = s.state.Schema
		}
		if db == "" || !m.Split([]byte(db)) {
			return false, nil // one cluster has all of it: route as usual
		}
		clusters = m.Holders(db)
	} else if clusters = m.Clusters(); len(clusters) < 2 {
		return false, nil
	}
	start := time.Now()
	ev := &s.ev
	*ev = Event{Session: s.ID, User: s.account.Name, Schema: s.state.Schema, Command: wire.ComQuery,
		Kind: st.Kind.String(), Start: start, SQL: sql, BytesIn: int64(1 + len(sql))}
	var cols [][]byte
	var rows []listed
	seen := map[string]bool{}
	for _, cl := range clusters {
		rs, e := s.listOn(ctx, pl, cl, sql, db)
		if e != nil {
			ev.Err, ev.Duration = true, time.Since(start)
			s.rt.Observer.Statement(s.sess, ev)
			return true, s.fail(e)
		}
		if cols == nil {
			cols = rs.Columns
		}
		for _, p := range rs.Rows {
			name, _, ok := wire.ReadLenEncString(p)
			if !ok || seen[string(name)] {
				continue
			}
			if l.Tables && m.Table([]byte(db), name) != cl ||
				!l.Tables && !systemDB(name) && !slices.Contains(m.Holders(string(name)), cl) {
				continue
			}
			seen[string(name)] = true
			rows = append(rows, listed{string(name), p})
		}
	}
	// The servers list in name order; so does the union.
	slices.SortFunc(rows, func(a, b listed) int { return strings.Compare(a.name, b.name) })
	status := s.status()
	if s.place.pendingBegin != "" {
		status |= wire.StatusInTrans
	}
	s.c.SetWriteTimeout(s.rt.Limits.ClientWrite)
	out := int64(0)
	write := func(p []byte) {
		out += int64(4 + len(p))
		s.c.WritePacket(p)
	}
	write(wire.AppendLenEncInt(nil, uint64(len(cols))))
	for _, p := range cols {
		write(p)
	}
	write(wire.AppendEOF(nil, 0, status))
	for _, r := range rows {
		write(r.pkt)
	}
	eof := wire.AppendEOF(nil, 0, status)
	out += int64(4 + len(eof))
	err = s.c.WriteFlush(eof)
	ev.Rows, ev.BytesOut, ev.Duration = int64(len(rows)), out, time.Since(start)
	s.rt.Observer.Statement(s.sess, ev)
	return true, err
}

type listed struct {
	name string
	pkt  []byte
}

// listOn runs a listing on one server of cluster cl, a replica when one
// is readable, on a connection of its own: the session's open transaction
// or pinned connection, on whichever cluster, is not involved. db is the
// default schema the statement needs there ("" for SHOW DATABASES). The
// statement is recorded as running, so KILL QUERY and a server found down
// interrupt it as any other; a server that fails it is skipped for one
// more try, as a read is.
func (s *engine) listOn(ctx context.Context, pl Placer, cl string, sql []byte, db string) (backend.Rows, *wire.Error) {
	env := pl.ClusterEnv(cl)
	if env == nil {
		return backend.Rows{}, wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: the placement names cluster %q, which is not configured", cl)
	}
	skip := ""
	for attempt := 0; ; attempt++ {
		snap, rt := env.Snapshot(), env.Runtime()
		srv, err := rt.Balancer.PickReplica(snap, rt.Policy, s.load, skip)
		if err != nil {
			if srv, err = router.PrimaryOf(snap); err != nil || srv.Name == skip {
				return backend.Rows{}, wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: the listing needs every cluster holding it, and cluster %s has no server to ask: %v", cl, err)
			}
		}
		rs, e, retry := s.listAt(ctx, rt, srv.Name, cl, sql, db)
		if e == nil || !retry || attempt > 0 {
			return rs, e
		}
		skip = srv.Name
	}
}

// listAt runs the listing on server; retry reports a failure of the
// server rather than an answer from it.
func (s *engine) listAt(ctx context.Context, rt *Runtime, server, cl string, sql []byte, db string) (rs backend.Rows, e *wire.Error, retry bool) {
	pool := rt.Pool(server)
	if pool == nil {
		return rs, unavailable(fmt.Errorf("server %s is not configured", server)), false
	}
	state := s.state
	state.Schema = db
	c, err := pool.Get(ctx, s.key(), s.account.Password, &state)
	if err != nil {
		var me *wire.Error
		if errors.As(err, &me) {
			return rs, me, false
		}
		return rs, wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: the listing needs every cluster holding it, and %s (cluster %s) cannot be reached: %v", server, cl, err), true
	}
	s.setActive(c, server, sql)
	rs, err = c.QueryRows(string(sql), rt.Limits.Query)
	s.clearActive()
	if c.IsBroken() || c.Closed() {
		pool.Discard(c)
	} else {
		pool.Put(c)
	}
	if err != nil {
		var me *wire.Error
		if errors.As(err, &me) {
			e := *me
			e.Message += fmt.Sprintf(" (on cluster %s)", cl)
			return rs, &e, false
		}
		return rs, wire.Errorf(wire.ErrUnavailable, "08S01", "sluice: the listing needs every cluster holding it, and %s (cluster %s) failed: %v", server, cl, err), true
	}
	return rs, nil, false
}
