package testbed

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestCopyDataDirIsExactAndSparse(t *testing.T) {
	src, dst := filepath.Join(t.TempDir(), "src"), filepath.Join(t.TempDir(), "dst")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	const mib = 1 << 20
	data := bytes.Repeat([]byte("sluice"), 10000)
	files := map[string]func(f *os.File) error{
		"empty": func(f *os.File) error { return nil },
		"small": func(f *os.File) error { _, err := f.Write([]byte("x")); return err },
		// data, a 4 MiB hole, 4 MiB of written zeros, data not on a block
		// boundary, and a trailing hole.
		"sub/mixed": func(f *os.File) error {
			if _, err := f.WriteAt(data, 0); err != nil {
				return err
			}
			if _, err := f.WriteAt(make([]byte, 4*mib), 5*mib); err != nil {
				return err
			}
			if _, err := f.WriteAt(data, 9*mib+123); err != nil {
				return err
			}
			return f.Truncate(16 * mib)
		},
		"holeonly": func(f *os.File) error { return f.Truncate(8 * mib) },
	}
	for name, fill := range files {
		f, err := os.Create(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := fill(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if err := copyDataDir(src, dst); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		want, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: copy differs (%d bytes, want %d)", name, len(got), len(want))
		}
	}
	fi, err := os.Stat(filepath.Join(dst, "sub/mixed"))
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 > 2*mib {
		t.Errorf("sub/mixed: %d bytes allocated for %d bytes of data; zeros and holes were copied", st.Blocks*512, 2*len(data))
	}
}
