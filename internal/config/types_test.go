package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
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

// TestScalarsWithPlainYAML: the custom types also work for code that decodes
// with yaml.v3 directly, and marshal back to the syntax they read.
func TestScalarsWithPlainYAML(t *testing.T) {
	var v struct {
		D   Duration       `yaml:"d"`
		B   ByteSize       `yaml:"b"`
		R   ReadYourWrites `yaml:"r"`
		Off ReadYourWrites `yaml:"off"`
	}
	if err := yaml.Unmarshal([]byte("{d: 1m30s, b: 16M, r: true, off: false}"), &v); err != nil {
		t.Fatal(err)
	}
	if v.D.D() != 90*time.Second || v.B != 16<<20 || v.R.Window != 2*time.Second || v.Off.Window != 0 {
		t.Errorf("decoded %+v", v)
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if want := "d: 1m30s\nb: 16MiB\nr: 2s\n\"off\": false\n"; string(out) != want {
		t.Errorf("yaml.Marshal = %q, want %q", out, want)
	}
	if err := yaml.Unmarshal([]byte("d: 5"), &v); err == nil || !strings.Contains(err.Error(), "has no unit") {
		t.Errorf("bare integer duration: err = %v", err)
	}
}

func TestReadYourWritesText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"true", 2 * time.Second}, {"false", 0}, {"off", 0}, {"750ms", 750 * time.Millisecond}} {
		var r ReadYourWrites
		if err := r.UnmarshalText([]byte(tc.in)); err != nil || r.Window != tc.want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", tc.in, r.Window, err, tc.want)
		}
	}
	var r ReadYourWrites
	if err := r.UnmarshalText([]byte("-1s")); err == nil {
		t.Error("negative window accepted")
	}
	b, _ := json.Marshal(struct{ A, B ReadYourWrites }{ReadYourWrites{}, ReadYourWrites{time.Second}})
	if string(b) != `{"A":"off","B":"1s"}` {
		t.Errorf("json = %s", b)
	}
}
