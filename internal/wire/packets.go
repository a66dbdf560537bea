package wire

import (
	"encoding/binary"
)

// OK is the content of an OK packet (or the EOF packet's status part).
type OK struct {
	AffectedRows uint64
	LastInsertID uint64
	Status       uint16
	Warnings     uint16
	Info         []byte // aliases the packet
}

// IsOK reports whether p is an OK packet (as opposed to a result set header).
func IsOK(p []byte) bool { return len(p) >= 7 && p[0] == iOK }

// IsERR reports whether p is an ERR packet.
func IsERR(p []byte) bool { return len(p) > 0 && p[0] == iERR }

// IsEOF reports whether p is an EOF packet: 0xfe with a short payload (a text
// row may start with 0xfe only when it is at least 9 bytes long).
func IsEOF(p []byte) bool { return len(p) > 0 && len(p) < 9 && p[0] == iEOF }

// ParseOK decodes an OK packet.
func ParseOK(p []byte) (OK, bool) {
	var ok OK
	if len(p) < 1 || p[0] != iOK {
		return ok, false
	}
	b := p[1:]
	var n int
	var good bool
	if ok.AffectedRows, n, _, good = ReadLenEncInt(b); !good {
		return ok, false
	}
	b = b[n:]
	if ok.LastInsertID, n, _, good = ReadLenEncInt(b); !good {
		return ok, false
	}
	b = b[n:]
	if len(b) < 4 {
		return ok, false
	}
	ok.Status = binary.LittleEndian.Uint16(b)
	ok.Warnings = binary.LittleEndian.Uint16(b[2:])
	ok.Info = b[4:]
	return ok, true
}

// ParseEOF returns the warnings and status flags of an EOF packet.
func ParseEOF(p []byte) (warnings, status uint16, ok bool) {
	if !IsEOF(p) || len(p) < 5 {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint16(p[1:]), binary.LittleEndian.Uint16(p[3:]), true
}

// ParseError decodes an ERR packet (protocol 4.1 form).
func ParseError(p []byte) *Error {
	if len(p) < 3 || p[0] != iERR {
		return &Error{Code: ErrHandshake, State: "08S01", Message: "malformed error packet"}
	}
	e := &Error{Code: binary.LittleEndian.Uint16(p[1:]), State: "HY000"}
	rest := p[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.State = string(rest[1:6])
		rest = rest[6:]
	}
	e.Message = string(rest)
	return e
}

// AppendOK appends an OK packet payload.
func AppendOK(b []byte, ok OK) []byte {
	b = append(b, iOK)
	b = AppendLenEncInt(b, ok.AffectedRows)
	b = AppendLenEncInt(b, ok.LastInsertID)
	b = binary.LittleEndian.AppendUint16(b, ok.Status)
	b = binary.LittleEndian.AppendUint16(b, ok.Warnings)
	return append(b, ok.Info...)
}

// AppendEOF appends an EOF packet payload.
func AppendEOF(b []byte, warnings, status uint16) []byte {
	b = append(b, iEOF)
	b = binary.LittleEndian.AppendUint16(b, warnings)
	return binary.LittleEndian.AppendUint16(b, status)
}

// AppendError appends an ERR packet payload.
func AppendError(b []byte, e *Error) []byte {
	b = append(b, iERR)
	b = binary.LittleEndian.AppendUint16(b, e.Code)
	state := e.State
	if len(state) != 5 {
		state = "HY000"
	}
	b = append(b, '#')
	b = append(b, state...)
	return append(b, e.Message...)
}

// Column is the part of a column definition sluice builds itself (for
// result sets it answers without a backend).
type Column struct {
	Name     string
	Type     byte // MYSQL_TYPE_*
	Charset  uint16
	Length   uint32
	Flags    uint16
	Decimals byte
}

// Column types used by sluice's own result sets.
const (
	TypeLongLong  byte = 0x08
	TypeVarString byte = 0xfd
)

// AppendColumnDef appends a ColumnDefinition41 payload.
func AppendColumnDef(b []byte, c Column) []byte {
	b = AppendLenEncString(b, []byte("def"))
	b = AppendLenEncString(b, nil) // schema
	b = AppendLenEncString(b, nil) // table
	b = AppendLenEncString(b, nil) // org_table
	b = AppendLenEncString(b, []byte(c.Name))
	b = AppendLenEncString(b, []byte(c.Name))
	b = append(b, 0x0c)
	b = binary.LittleEndian.AppendUint16(b, c.Charset)
	b = binary.LittleEndian.AppendUint32(b, c.Length)
	b = append(b, c.Type)
	b = binary.LittleEndian.AppendUint16(b, c.Flags)
	b = append(b, c.Decimals, 0, 0)
	return b
}

// PrepareOK is the first packet of a COM_STMT_PREPARE response.
type PrepareOK struct {
	StmtID   uint32
	Columns  uint16
	Params   uint16
	Warnings uint16
}

// ParsePrepareOK decodes the first packet of a COM_STMT_PREPARE response.
func ParsePrepareOK(p []byte) (PrepareOK, bool) {
	if len(p) < 12 || p[0] != iOK {
		return PrepareOK{}, false
	}
	return PrepareOK{
		StmtID:   binary.LittleEndian.Uint32(p[1:]),
		Columns:  binary.LittleEndian.Uint16(p[5:]),
		Params:   binary.LittleEndian.Uint16(p[7:]),
		Warnings: binary.LittleEndian.Uint16(p[10:]),
	}, true
}

// AppendPrepareOK appends the first packet of a COM_STMT_PREPARE response.
func AppendPrepareOK(b []byte, p PrepareOK) []byte {
	b = append(b, iOK)
	b = binary.LittleEndian.AppendUint32(b, p.StmtID)
	b = binary.LittleEndian.AppendUint16(b, p.Columns)
	b = binary.LittleEndian.AppendUint16(b, p.Params)
	b = append(b, 0)
	return binary.LittleEndian.AppendUint16(b, p.Warnings)
}
