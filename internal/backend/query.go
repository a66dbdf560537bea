package backend

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-proxy/sluice/internal/wire"
)

// QueryUint runs a query whose answer is one row of one unsigned integer
// (SELECT LAST_INSERT_ID()) and returns that integer. Backends speak
// without CLIENT_DEPRECATE_EOF, so the answer is: column count, column
// definition, EOF, row, EOF.
func (c *Conn) QueryUint(sql string, timeout time.Duration) (uint64, error) {
	if err := c.sendQuery(sql, timeout); err != nil {
		return 0, err
	}
	c.SetReadTimeout(timeout)
	defer c.SetReadTimeout(0)
	var v uint64
	var verr error
	for i := 0; ; i++ {
		p, err := c.ReadPacket(0)
		if err != nil {
			c.broken = true
			return 0, err
		}
		switch {
		case len(p) > 0 && p[0] == 0xFF:
			return 0, wire.ParseError(p)
		case i == 0 && len(p) > 0 && p[0] == 0x00:
			return 0, fmt.Errorf("%q returned no result set", sql)
		case len(p) > 0 && p[0] == 0xFE && len(p) < 9:
			if i > 2 { // the EOF after the row
				return v, verr
			}
		case i == 3:
			s, _, ok := wire.ReadLenEncString(p)
			if !ok {
				verr = fmt.Errorf("%q: malformed row", sql)
				continue
			}
			v, verr = strconv.ParseUint(string(s), 10, 64)
		}
	}
}

// SetMultiStatements turns the server's multi-statement support for this
// connection on or off (COM_SET_OPTION). sluice connects with it on; a
// statement from a client without it can be sent with it off, so that
// the server itself refuses a second statement, as it would for that
// client. The answer is one EOF (or OK) packet, or an error.
func (c *Conn) SetMultiStatements(on bool, timeout time.Duration) error {
	opt := wire.OptionMultiStatementsOff
	if on {
		opt = wire.OptionMultiStatementsOn
	}
	c.SetWriteTimeout(timeout)
	if err := c.WriteCommand([]byte{wire.ComSetOption, byte(opt), byte(opt >> 8)}); err != nil {
		c.broken = true
		return err
	}
	c.SetReadTimeout(timeout)
	defer c.SetReadTimeout(0)
	p, err := c.ReadPacket(0)
	switch {
	case err != nil:
		c.broken = true
		return err
	case len(p) > 0 && p[0] == 0xFF:
		return wire.ParseError(p)
	case len(p) > 0 && (p[0] == 0xFE || p[0] == 0x00):
		return nil
	}
	c.broken = true
	return fmt.Errorf("COM_SET_OPTION: unexpected answer %#x", p)
}

// Rows is one result set as the server sent it: its column definitions
// and rows as packets (copies), for sluice to answer with itself.
type Rows struct {
	Columns [][]byte
	Rows    [][]byte
}

// QueryRows runs a statement whose answer is one result set (SHOW
// DATABASES) and returns its packets. Meant for short listings: every
// row is kept.
func (c *Conn) QueryRows(sql string, timeout time.Duration) (Rows, error) {
	if err := c.sendQuery(sql, timeout); err != nil {
		return Rows{}, err
	}
	c.SetReadTimeout(timeout)
	defer c.SetReadTimeout(0)
	var out Rows
	cols, inRows := uint64(0), false
	for i := 0; ; i++ {
		p, err := c.ReadPacket(0)
		if err != nil {
			c.broken = true
			return Rows{}, err
		}
		switch {
		case len(p) > 0 && p[0] == 0xFF:
			return Rows{}, wire.ParseError(p)
		case i == 0:
			n, _, null, ok := wire.ReadLenEncInt(p)
			if !ok || null || n == 0 || p[0] == 0xFB {
				// An OK or a LOCAL INFILE request: the connection's
				// state is unknown from here.
				c.broken = true
				return Rows{}, fmt.Errorf("%q returned no result set", sql)
			}
			cols = n
		case len(p) > 0 && p[0] == 0xFE && len(p) < 9:
			if inRows {
				if len(p) >= 5 && binary.LittleEndian.Uint16(p[3:])&wire.StatusMoreResultsExists != 0 {
					c.broken = true // more result sets follow: not drained here
					return Rows{}, fmt.Errorf("%q returned several result sets", sql)
				}
				return out, nil
			}
			if uint64(len(out.Columns)) != cols {
				c.broken = true
				return Rows{}, fmt.Errorf("%q: malformed result set", sql)
			}
			inRows = true
		case inRows:
			out.Rows = append(out.Rows, append([]byte(nil), p...))
		default:
			out.Columns = append(out.Columns, append([]byte(nil), p...))
		}
	}
}

// sendQuery sends sql as a COM_QUERY; a failed write breaks the
// connection.
func (c *Conn) sendQuery(sql string, timeout time.Duration) error {
	buf := make([]byte, 0, 1+len(sql))
	buf = append(append(buf, wire.ComQuery), sql...)
	c.SetWriteTimeout(timeout)
	if err := c.WriteCommand(buf); err != nil {
		c.broken = true
		return err
	}
	return nil
}
