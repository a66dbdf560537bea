package statestore

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

var errLocked = errors.New("locked")

// File is the embedded store: one JSON file on a local file system.
//
// Save writes a temporary file in the same directory, fsyncs it, renames it
// over the state file and fsyncs the directory, so after a crash the file
// holds either the previous state or the new one, never a mix. Leftover
// temporary files of a crashed Save are ignored, and removed by OpenFile.
//
// OpenFile takes an exclusive flock on path+".lock" for the life of the
// File, so two sluice processes cannot share one state file by accident.
// (flock does not protect across machines on network file systems.)
type File struct {
	path string
	dir  string
	base string
	lock *os.File

	mu     sync.Mutex
	closed bool

	wmu      sync.Mutex
	watchers map[chan Entry]string

	// wrap, when set by tests, wraps the writer of the temporary file to
	// inject failures.
	wrap func(io.Writer) io.Writer
}

var _ Store = (*File)(nil)

// OpenFile opens the state file at path, which need not exist yet (its
// directory must), and locks it. A file that exists but cannot be read as
// a state is an error naming it: it is never reset silently.
func OpenFile(path string) (*File, error) {
	if path == "" {
		return nil, errors.New("statestore: no state file path")
	}
	path = filepath.Clean(path)
	lockPath := path + ".lock"
	lf, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("statestore: open lock file: %w", err)
	}
	if err := lockFile(lf); err != nil {
		holder := readHolder(lf)
		lf.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("statestore: state file %s is in use by another sluice (%s holds the lock %s): give each instance its own state file", path, holder, lockPath)
		}
		return nil, fmt.Errorf("statestore: lock %s: %w", lockPath, err)
	}
	// Say who holds the lock, for the error above; the lock itself is what
	// counts, so a failure here does not matter.
	if lf.Truncate(0) == nil {
		_, _ = lf.WriteAt([]byte("pid "+strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	f := &File{path: path, dir: filepath.Dir(path), base: filepath.Base(path), lock: lf}
	if _, err := f.load(); err != nil {
		lf.Close()
		return nil, err
	}
	f.removeTemps()
	return f, nil
}

func readHolder(lf *os.File) string {
	b := make([]byte, 64)
	n, _ := lf.ReadAt(b, 0)
	if s := strings.TrimSpace(string(b[:n])); strings.HasPrefix(s, "pid ") {
		return "process " + strings.TrimPrefix(s, "pid ")
	}
	return "another process"
}

// Path returns the state file's path.
func (f *File) Path() string { return f.path }

// Load reads the stored state: State{} when the file does not exist, an
// error naming the file when it cannot be read or parsed.
func (f *File) Load() (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return State{}, ErrClosed
	}
	return f.load()
}

// Save replaces the stored state with s, durably, if s.Epoch is greater
// than the stored epoch; otherwise it returns an error matching
// ErrStaleEpoch. When it fails, the previous state is still in place — with
// one exception the error states: if only the final directory sync fails,
// the new state is in place but may not survive a crash of the machine.
func (f *File) Save(s State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	return f.saveCluster(DefaultCluster, s)
}

// Close releases the lock. Load and Save fail afterwards.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	return f.lock.Close()
}

func (f *File) load() (State, error) {
	doc, err := f.loadDoc()
	return doc.State, err
}

func (f *File) loadDoc() (document, error) {
	data, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return document{}, nil
	}
	if err != nil {
		return document{}, fmt.Errorf("statestore: read state file: %w", err)
	}
	var doc document
	if err := decode(data, &doc); err != nil {
		return document{}, fmt.Errorf("statestore: state file %s is corrupt: %w; it is never reset automatically: restore it, or remove it once you have checked which server is the primary", f.path, err)
	}
	return doc, nil
}

// decode parses exactly one JSON object. Unknown fields are allowed, so
// that a state written by a newer sluice can still be read.
func decode(data []byte, s any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("empty file")
	}
	if data = bytes.TrimLeft(data, " \t\r\n"); data[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(s); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	return nil
}

func (f *File) tempPrefix() string { return f.base + ".tmp-" }

func (f *File) write(data []byte) error {
	tmp, err := os.CreateTemp(f.dir, f.tempPrefix()+"*")
	if err != nil {
		return fmt.Errorf("statestore: create temporary file: %w", err)
	}
	name := tmp.Name()
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(name)
		}
	}()
	var w io.Writer = tmp
	if f.wrap != nil {
		w = f.wrap(tmp)
	}
	if n, err := w.Write(data); err != nil || n != len(data) {
		return fmt.Errorf("statestore: write %s: %w", name, cmp.Or(err, io.ErrShortWrite))
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("statestore: sync %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("statestore: close %s: %w", name, err)
	}
	if err := os.Rename(name, f.path); err != nil {
		return fmt.Errorf("statestore: replace state file: %w", err)
	}
	done = true
	if err := syncDir(f.dir); err != nil {
		return fmt.Errorf("statestore: sync directory %s: %w (the new state is in %s but may not survive a crash)", f.dir, err, f.path)
	}
	return nil
}

// removeTemps deletes temporary files left by a Save that crashed. Holding
// the lock, no other Save can be writing one.
func (f *File) removeTemps() {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), f.tempPrefix()) && e.Type().IsRegular() {
			os.Remove(filepath.Join(f.dir, e.Name()))
		}
	}
}
