package config

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

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
