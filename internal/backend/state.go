package backend

import (
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// State is the part of a client session that a backend connection must
// share before it may serve the session: default schema, connection
// collation, and every session-scoped SET the client ran, in order.
type State struct {
	Schema    string
	Collation byte
	Sets      []Set
	SetsHash  uint64 // identifies Sets; equal hashes mean equal lists
}

// Set is one recorded SET statement. Statements with the same Key replace
// each other (the later one wins, as on the server); an empty Key is never
// replaced.
type Set struct {
	Key string
	SQL string
}

// maxSets bounds what one session may accumulate; beyond it the oldest
// keyless entries are the client's problem (they are kept, see Record).
const maxSets = 1024

// Record adds a successful SET to the state. It reports false when the
// state is too large to replay, and the caller pins the session instead.
func (s *State) Record(key, sql string) bool {
	if key != "" {
		for i, e := range s.Sets {
			if e.Key == key {
				s.Sets = append(s.Sets[:i:i], s.Sets[i+1:]...)
				break
			}
		}
	}
	if len(s.Sets) >= maxSets {
		return false
	}
	s.Sets = append(s.Sets, Set{Key: key, SQL: sql})
	s.rehash()
	return true
}

// ResetSets forgets every recorded SET (COM_RESET_CONNECTION, COM_CHANGE_USER).
func (s *State) ResetSets() {
	s.Sets = nil
	s.SetsHash = 0
}

func (s *State) rehash() {
	if len(s.Sets) == 0 {
		s.SetsHash = 0
		return
	}
	h := fnv.New64a()
	for _, e := range s.Sets {
		h.Write([]byte(e.SQL))
		h.Write([]byte{0})
	}
	s.SetsHash = h.Sum64() | 1 // never 0, which means "no SETs"
}

// Clone returns a copy whose Sets may be changed independently.
func (s *State) Clone() State {
	c := *s
	c.Sets = append([]Set(nil), s.Sets...)
	return c
}

// Matches reports whether c already serves state s.
func (c *Conn) Matches(s *State) bool {
	return c.SetsHash == s.SetsHash && c.Collation == s.Collation && c.schemaKnown && c.Schema == s.Schema
}

// Adopt records that the connection now has state s (the client's own
// statement changed it, so nothing needs replaying).
func (c *Conn) Adopt(s *State) {
	c.Schema, c.schemaKnown, c.Collation, c.SetsHash = s.Schema, true, s.Collation, s.SetsHash
}

// Sync brings the connection to state s in at most two round trips: a
// COM_RESET_CONNECTION when it carries another session's SETs, then one
// multi-statement that selects the schema, collation and replays the SETs.
func (c *Conn) Sync(s *State, timeout time.Duration) error {
	if c.Matches(s) {
		return nil
	}
	if c.SetsHash != s.SetsHash && c.SetsHash != 0 {
		if _, err := c.Command([]byte{wire.ComResetConnection}, wire.ModeText, timeout); err != nil {
			return fmt.Errorf("reset connection: %w", err)
		}
		c.forgetStmts()
		c.SetsHash, c.Collation, c.schemaKnown, c.LastInsertID = 0, 0, false, 0
		c.TracksGTID = false // the reset restored the global trackers
	}
	var b strings.Builder
	retrack := c.retrackSQL()
	b.WriteString(retrack)
	if !c.schemaKnown || c.Schema != s.Schema {
		if s.Schema != "" {
			b.WriteString("USE ")
			b.WriteString(QuoteIdent(s.Schema))
			b.WriteString(";")
		}
	}
	if c.Collation != s.Collation && s.Collation != 0 {
		fmt.Fprintf(&b, "SET character_set_client=%d, character_set_results=%d, collation_connection=%d;", s.Collation, s.Collation, s.Collation)
	}
	if c.SetsHash != s.SetsHash {
		for _, e := range s.Sets {
			b.WriteString(e.SQL)
			b.WriteString(";")
		}
	}
	if b.Len() > 0 {
		if _, err := c.Exec(b.String(), timeout); err != nil {
			c.broken = true
			return fmt.Errorf("apply session state: %w", err)
		}
	}
	if retrack != "" {
		c.TracksGTID = true
	}
	c.Adopt(s)
	return nil
}

// QuoteIdent quotes a MySQL identifier with backquotes.
func QuoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}
