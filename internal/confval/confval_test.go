package confval

import (
	"strings"
	"testing"
	"time"
)

func TestParseByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		err  string
	}{
		{in: "1048576", want: 1 << 20},
		{in: "0", want: 0},
		{in: "64MiB", want: 64 << 20},
		{in: "64MB", want: 64 << 20},
		{in: "64M", want: 64 << 20},
		{in: "64m", want: 64 << 20},
		{in: "16 MiB", want: 16 << 20},
		{in: "1K", want: 1024},
		{in: "1kb", want: 1024},
		{in: "2KiB", want: 2048},
		{in: "1G", want: 1 << 30},
		{in: "1GB", want: 1 << 30},
		{in: "1GiB", want: 1 << 30},
		{in: "512B", want: 512},
		{in: "", err: `invalid size ""`},
		{in: "MiB", err: `invalid size "MiB"`},
		{in: "1.5G", err: `unknown unit ".5G"`},
		{in: "1T", err: `unknown unit "T"`},
		{in: "-1K", err: `must not be negative`},
		{in: "9999999999G", err: `is too large`},
		{in: "99999999999999999999", err: `is too large`},
	} {
		got, err := ParseByteSize(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseByteSize(%q) error = %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	for _, tc := range []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"}, {1000, "1000B"}, {1024, "1KiB"}, {1536, "1536B"}, {1 << 20, "1MiB"},
		{64 << 20, "64MiB"}, {1 << 30, "1GiB"}, {3 << 30, "3GiB"}, {1025 << 10, "1025KiB"},
	} {
		if got := tc.in.String(); got != tc.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
		back, err := ParseByteSize(tc.in.String())
		if err != nil || back != tc.in {
			t.Errorf("ParseByteSize(%q) = %d, %v; want it to round-trip to %d", tc.in.String(), back, err, tc.in)
		}
	}
}

func TestDurationString(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"}, {time.Second, "1s"}, {250 * time.Millisecond, "250ms"}, {90 * time.Second, "1m30s"},
		{time.Minute, "1m"}, {time.Hour, "1h"}, {8 * time.Hour, "8h"}, {time.Hour + 30*time.Second, "1h0m30s"},
		{time.Hour + time.Minute, "1h1m"}, {1500 * time.Millisecond, "1.5s"},
	} {
		d := Duration(tc.in)
		if got := d.String(); got != tc.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tc.in, got, tc.want)
		}
		var back Duration
		if err := back.UnmarshalText([]byte(d.String())); err != nil || back != d {
			t.Errorf("UnmarshalText(%q) = %v, %v; want it to round-trip", d.String(), back, err)
		}
	}
}

func TestOneOf(t *testing.T) {
	if ps := OneOf("log.level", "info", "debug", "info"); ps != nil {
		t.Errorf("allowed value: %v", ps)
	}
	for _, tc := range []struct{ value, want string }{
		{"weigted", `unknown value "weigted" (did you mean "weighted"?); allowed: round-robin, weighted`},
		{"Round_Robin", `unknown value "Round_Robin" (did you mean "round-robin"?); allowed: round-robin, weighted`},
		{"x", `unknown value "x"; allowed: round-robin, weighted`},
	} {
		ps := OneOf("routing.balance", tc.value, "round-robin", "weighted")
		if len(ps) != 1 || ps[0].Path != "routing.balance" || ps[0].Message != tc.want {
			t.Errorf("OneOf(%q) = %+v, want %q", tc.value, ps, tc.want)
		}
	}
}
