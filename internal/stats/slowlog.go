package stats

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sluice-proxy/sluice/internal/session"
)

// The slow query log: one JSON object a line, for each command that took
// at least the threshold. Statement only copies the facts and queues them
// (dropping the line, and counting it, when the queue is full); a goroutine
// writes them, so a slow disk or a stuck stderr never slows a session.
//
// Fields, in this order:
//
//	time         when the command started, RFC 3339 in UTC with nanoseconds
//	session      sluice's session id
//	user, schema the client's user and default schema
//	server       the server that ran it ("" when sluice answered)
//	route        primary, replica or sluice
//	kind         statement kind
//	duration     seconds
//	rows         rows sent
//	affected     rows affected
//	error        true when the command ended in an error
//	digest       normalized text (no literals)
//	digest_hash  16 hex digits, as in /api/digests
//	query        the statement text, literals included, cut to
//	             max_query_length bytes (absent when that is turned off)
//	truncated    true when query was cut
//
// Unlike the digests, the query text holds literals, which may be personal
// data: set slow_query.max_query_length to 0 to leave it out.

const slowQueue = 1024

type slowEntry struct {
	w     io.Writer
	line  slowLine
	flush chan struct{} // set: not a line, a request to signal when reached
}

type slowLine struct {
	Time       time.Time `json:"time"`
	Session    uint32    `json:"session"`
	User       string    `json:"user"`
	Schema     string    `json:"schema"`
	Server     string    `json:"server"`
	Route      string    `json:"route"`
	Kind       string    `json:"kind"`
	Duration   float64   `json:"duration"`
	Rows       int64     `json:"rows"`
	Affected   uint64    `json:"affected"`
	Error      bool      `json:"error"`
	Digest     string    `json:"digest"`
	DigestHash string    `json:"digest_hash,omitempty"`
	Query      *string   `json:"query,omitempty"`
	Truncated  bool      `json:"truncated,omitempty"`
}

// slow queues a slow log line. It runs on the session's goroutine, for
// slow commands only, so it may allocate.
func (st *Stats) slow(set *settings, ev *session.Event, e *digestEntry, now time.Time) {
	st.slowCount.Add(1)
	if set.slowLog == nil {
		return
	}
	l := slowLine{
		Time: ev.Start, Session: ev.Session, User: ev.User, Schema: ev.Schema, Server: ev.Server,
		Route: routeNames[routeIndex(ev.Target)], Kind: ev.Kind, Duration: ev.Duration.Seconds(),
		Rows: ev.Rows, Affected: ev.Affected, Error: ev.Err,
	}
	if l.Time.IsZero() {
		l.Time = now.Add(-ev.Duration)
	}
	l.Time = l.Time.UTC()
	switch {
	case e != nil:
		l.Digest, l.DigestHash = e.text, fmt.Sprintf("%016x", e.key.hash)
	case len(ev.SQL) > 0:
		l.Digest = digestText(ev.SQL)
	}
	if set.maxQuery >= 0 && len(ev.SQL) > 0 {
		q, cut := truncate(ev.SQL, set.maxQuery)
		s := string(q)
		l.Query, l.Truncated = &s, cut
	}
	select {
	case st.slowQ <- slowEntry{w: set.slowLog, line: l}:
	default:
		st.slowDropped.Add(1)
	}
}

func (st *Stats) writeSlowLog() {
	defer close(st.slowDone)
	var buf []byte
	write := func(e slowEntry) {
		if e.flush != nil {
			close(e.flush)
			return
		}
		b, err := json.Marshal(e.line)
		if err == nil {
			buf = append(append(buf[:0], b...), '\n')
			_, err = e.w.Write(buf)
		}
		if err != nil {
			st.slowDropped.Add(1)
		}
	}
	for {
		select {
		case e := <-st.slowQ:
			write(e)
		case <-st.done:
			for {
				select {
				case e := <-st.slowQ:
					write(e)
				default:
					return
				}
			}
		}
	}
}

// OpenSlowLog opens the destination named by slow_query.file: "stderr" is
// os.Stderr (and closing it does nothing); anything else is a file opened
// for appending, created with mode 0640 when missing.
func OpenSlowLog(file string) (io.WriteCloser, error) {
	if file == "stderr" {
		return nopCloser{os.Stderr}, nil
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open slow query log: %w", err)
	}
	return f, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
