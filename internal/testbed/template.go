package testbed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// dirPrefix names topology directories under os.TempDir().
	dirPrefix = "sluice-testbed-"
	// templatePrefix names the cached template; it starts with dirPrefix
	// but is never swept as a topology (it has no owner file).
	templatePrefix = dirPrefix + "template-"
	// buildPrefix names a template being built.
	buildPrefix = ".sluice-testbed-build-"
	// ownerFile in a topology directory records the owning process.
	ownerFile = "owner"
	// innodbLogFileSize is used for the template and every server (a
	// mismatch would make InnoDB resize the redo log at every start).
	innodbLogFileSize = "16M"
	// templateLayout changes whenever the way the template is built does,
	// so that a cached template from older code is not used.
	templateLayout = "2"
)

// templateSQL runs at the end of mariadb-install-db's bootstrap. Bootstrap
// runs with --skip-grant-tables; FLUSH PRIVILEGES loads them so that
// account statements work. Changing it changes the template's cache key.
//
// root@localhost gets an empty password instead of the default unix_socket
// authentication, which admits only the OS user root: developers who are
// not root must be able to use the socket too. 'localhost' matches only
// socket connections under --skip-name-resolve, and the socket lives in a
// 0700 directory, so root stays unreachable over TCP and to other users.
const templateSQL = `FLUSH PRIVILEGES;
ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('');
DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';
CREATE USER 'app'@'%' IDENTIFIED BY 'app';
GRANT ALL PRIVILEGES ON *.* TO 'app'@'%';
REVOKE READ_ONLY ADMIN ON *.* FROM 'app'@'%';
CREATE USER 'sluice_monitor'@'%' IDENTIFIED BY 'monitor';
GRANT SUPER, REPLICATION SLAVE ADMIN, READ_ONLY ADMIN, CONNECTION ADMIN, BINLOG ADMIN, REPLICATION MASTER ADMIN, SLAVE MONITOR, BINLOG MONITOR, PROCESS, RELOAD ON *.* TO 'sluice_monitor'@'%';
CREATE USER 'repl'@'%' IDENTIFIED BY 'repl';
GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';
CREATE DATABASE test;
FLUSH PRIVILEGES;
`

// binaries holds the resolved programs; set by Available.
var binaries struct {
	once              sync.Once
	err               error
	mariadbd          string
	installDB         string
	version           string // e.g. "10.11.19-MariaDB-0+deb12u1"
	versionForDirName string
}

// searchDirs are tried after $PATH: Debian puts mariadbd in /usr/sbin,
// which is not on a normal user's PATH.
var searchDirs = []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin", "/usr/local/mariadb/bin"}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range searchDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in $PATH or %s", name, strings.Join(searchDirs, ", "))
}

var versionRE = regexp.MustCompile(`Ver\s+(\S+)`)

// Available reports whether MariaDB's server programs are installed. The
// error says how to install them; callers fail (never skip) on it.
func Available() error {
	b := &binaries
	b.once.Do(func() {
		var errs []error
		var err error
		if b.mariadbd, err = lookPath("mariadbd"); err != nil {
			errs = append(errs, err)
		}
		if b.installDB, err = lookPath("mariadb-install-db"); err != nil {
			errs = append(errs, err)
		}
		if len(errs) == 0 {
			out, err := exec.Command(b.mariadbd, "--version").CombinedOutput()
			m := versionRE.FindSubmatch(out)
			if err != nil || m == nil {
				errs = append(errs, fmt.Errorf("%s --version: %v: %s", b.mariadbd, err, bytes.TrimSpace(out)))
			} else {
				b.version = string(m[1])
				b.versionForDirName = regexp.MustCompile(`[^A-Za-z0-9.]+`).ReplaceAllString(b.version, "_")
			}
		}
		if len(errs) > 0 {
			b.err = fmt.Errorf("testbed: MariaDB is not installed (%w); run scripts/setup.sh", errors.Join(errs...))
		}
	})
	return b.err
}

// Version returns the mariadbd version string, e.g. "10.11.19-MariaDB-0+deb12u1".
func Version() (string, error) {
	if err := Available(); err != nil {
		return "", err
	}
	return binaries.version, nil
}

var tpl struct {
	once sync.Once
	dir  string
	err  error
}

// template returns the data directory that every server copies, building
// it once per machine, server version, user and templateSQL.
func template() (string, error) {
	tpl.once.Do(func() { tpl.dir, tpl.err = ensureTemplate() })
	return tpl.dir, tpl.err
}

func ensureTemplate() (string, error) {
	if err := Available(); err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n", templateLayout, binaries.version, innodbLogFileSize, templateSQL)
	key := hex.EncodeToString(h.Sum(nil))[:12]
	final := filepath.Join(os.TempDir(), fmt.Sprintf("%s%s-%d-%s", templatePrefix, binaries.versionForDirName, os.Geteuid(), key))
	data := filepath.Join(final, "data")

	if ok, err := usableTemplate(final); err != nil {
		return "", err
	} else if ok {
		return data, nil
	}

	build, err := os.MkdirTemp("", buildPrefix+"*")
	if err != nil {
		return "", fmt.Errorf("testbed: template: %w", err)
	}
	defer os.RemoveAll(build) // a no-op after the rename
	if err := installDB(build); err != nil {
		return "", err
	}
	// Keep the template itself sparse: less disk, and reading holes is free.
	if err := copyDataDir(filepath.Join(build, "installed"), filepath.Join(build, "data")); err != nil {
		return "", fmt.Errorf("testbed: template: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(build, "installed")); err != nil {
		return "", fmt.Errorf("testbed: template: %w", err)
	}
	if err := os.WriteFile(filepath.Join(build, "complete"), []byte(binaries.version+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("testbed: template: %w", err)
	}
	if err := os.Rename(build, final); err != nil {
		// Another process won the race: use its template.
		if ok, err2 := usableTemplate(final); err2 == nil && ok {
			return data, nil
		}
		return "", fmt.Errorf("testbed: template: %w", err)
	}
	return data, nil
}

// usableTemplate reports whether a finished template is at dir. A template
// not owned by us or writable by others is refused: its accounts would be
// someone else's.
func usableTemplate(dir string) (bool, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("testbed: template: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0) {
		return false, fmt.Errorf("testbed: template %s is not owned by uid %d or is writable by others; remove it", dir, os.Geteuid())
	}
	if _, err := os.Stat(filepath.Join(dir, "complete")); err != nil {
		return false, fmt.Errorf("testbed: template %s is incomplete; remove it", dir)
	}
	return true, nil
}

// installDB runs mariadb-install-db into build/installed with the fixed accounts.
func installDB(build string) error {
	sqlFile := filepath.Join(build, "accounts.sql")
	if err := os.WriteFile(sqlFile, []byte(templateSQL), 0o600); err != nil {
		return fmt.Errorf("testbed: template: %w", err)
	}
	args := []string{
		"--no-defaults",
		"--datadir=" + filepath.Join(build, "installed"),
		"--auth-root-authentication-method=socket",
		"--skip-test-db",
		"--skip-name-resolve",
		"--extra-file=" + sqlFile,
		"--innodb-log-file-size=" + innodbLogFileSize,
	}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	cmd := exec.Command(binaries.installDB, args...)
	cmd.Dir = build
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("testbed: %s: %w:\n%s", binaries.installDB, err, lastLines(string(out), 30))
	}
	return os.Remove(sqlFile)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// copyDataDir copies the template into dst, which must not exist. Most
// of the template is zeros (ibdata1 is 12 MiB with about 2 MiB of data,
// ib_logfile0 is preallocated): copyFile leaves holes for them, which
// makes a copy ~20 times cheaper than a plain one.
func copyDataDir(src, dst string) error {
	buf := make([]byte, copyBlock)
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o700)
		case d.Type().IsRegular():
			return copyFile(path, target, buf)
		default:
			return fmt.Errorf("unexpected file type %s", path)
		}
	})
}

// copyBlock is the hole granularity of copyFile (a multiple of any
// filesystem block size).
const copyBlock = 64 << 10

var zeroBlock = make([]byte, copyBlock)

// copyFile copies src to the new file dst, seeking over all-zero blocks
// so that they become holes.
func copyFile(src, dst string, buf []byte) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o660)
	if err != nil {
		return err
	}
	var size int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 {
			if bytes.Equal(buf[:n], zeroBlock[:n]) {
				if _, err := out.Seek(int64(n), io.SeekCurrent); err != nil {
					out.Close()
					return err
				}
			} else if _, err := out.Write(buf[:n]); err != nil {
				out.Close()
				return err
			}
			size += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	if err := out.Truncate(size); err != nil { // trailing holes
		out.Close()
		return err
	}
	return out.Close()
}

// shortTempDir is where sockets go when a topology's Dir is too long.
func shortTempDir() string {
	if d := os.TempDir(); len(d) < 40 {
		return d
	}
	return "/tmp"
}

// writeOwner records this process (pid and start time) in a topology
// directory, so that a later process can sweep it if this one dies.
func writeOwner(dir string) error {
	start, err := procStartTime(os.Getpid())
	if err != nil {
		start = "?"
	}
	content := fmt.Sprintf("%d %s\n", os.Getpid(), start)
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(content), 0o600); err != nil {
		return fmt.Errorf("testbed: %w", err)
	}
	return nil
}

// procStartTime returns field 22 of /proc/PID/stat (start time in clock
// ticks since boot), which tells a live process from a reused pid.
func procStartTime(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name (field 2) may contain spaces; fields after it don't.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return f[19], nil // field 3 is f[0]
}

var sweepOnce sync.Once

// sweepStale removes topology directories under os.TempDir() whose owner
// process is gone (a crashed or killed test binary; its servers died with
// it through PDEATHSIG) and template builds abandoned an hour ago.
func sweepStale() {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return // no /proc: cannot tell who is alive
	}
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(os.TempDir(), name)
		switch {
		case !e.IsDir():
		case strings.HasPrefix(name, buildPrefix):
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.RemoveAll(path)
			}
		case strings.HasPrefix(name, templatePrefix):
		case strings.HasPrefix(name, dirPrefix):
			if ownerGone(filepath.Join(path, ownerFile)) {
				os.RemoveAll(path)
			}
		}
	}
}

func ownerGone(file string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false // not ours, or still being created
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 0 {
		return false
	}
	start, err := procStartTime(pid)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	return f[1] != "?" && start != f[1]
}
