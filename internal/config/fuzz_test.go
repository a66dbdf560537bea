package config

import (
	"errors"
	"testing"
)

// FuzzParse: Parse reads files that operators edit by hand and, on reload,
// files that may be half-written; no input may make it panic or hang, and
// it returns either a Config or Problems, never both or neither.
func FuzzParse(f *testing.F) {
	f.Add([]byte(Example()))
	f.Add([]byte(designSketch))
	for _, tc := range problemCases {
		f.Add([]byte(tc.yaml))
	}
	f.Add([]byte("a: &a [*a, *a]\nusers: [*a]\n"))
	f.Add([]byte("servers:\n  - &s {<<: [*s]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml", func(string) string { return "pw" })
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of them", c, err)
		}
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error %v is not a non-empty Problems", err)
			}
			for _, p := range ps {
				if p.Message == "" {
					t.Fatalf("empty message in %v", ps)
				}
			}
			return
		}
		_ = c.Redacted()
		if len(c.Users) == 0 || len(c.Servers) == 0 {
			t.Fatalf("a config without users or servers was accepted")
		}
	})
}
