package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-proxy/sluice/internal/proxy"
	"github.com/sluice-proxy/sluice/internal/testbed"
)

// The mariadb command-line client (libmariadb, the one DBAs use) through
// sluice: batch mode, scripts, a real terminal session and its errors.

// clientTimeout bounds every run of the mariadb client.
const clientTimeout = 30 * time.Second

// mariadbArgs is the command line of the mariadb client for the app user at
// addr. --no-defaults keeps the user's ~/.my.cnf out of the test.
func mariadbArgs(addr, password string, extra ...string) []string {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"--no-defaults", "-h" + host, "-P" + port, "-u" + testbed.AppUser, "-p" + password}
	return append(args, extra...)
}

func sluiceAddr(p *proxy.Proxy) string { return p.Addr().String() }

// mariadbRun runs the client in batch mode (no terminal, empty stdin) and
// returns what it wrote to stdout and stderr and its exit error.
func mariadbRun(t testing.TB, addr, password string, extra ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mariadb", mariadbArgs(addr, password, extra...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("mariadb %v: no answer within %s\nstdout:\n%s\nstderr:\n%s", extra, clientTimeout, out.String(), errb.String())
	}
	return out.String(), errb.String(), err
}

// mariadbOK runs the client and fails the test unless it exits 0 without
// writing to stderr.
func mariadbOK(t testing.TB, addr string, extra ...string) string {
	t.Helper()
	out, errOut, err := mariadbRun(t, addr, testbed.AppPassword, extra...)
	if err != nil || errOut != "" {
		t.Fatalf("mariadb %q: %v\nstderr: %s\nstdout: %s", extra, err, errOut, out)
	}
	return out
}

func TestMariadbClientBatchStatements(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared)
	addr := sluiceAddr(p)

	before := userCommands(t, shared)
	mariadbOK(t, addr, db, "-e",
		"CREATE TABLE fruit (id INT PRIMARY KEY, name VARCHAR(20), qty INT);"+
			"INSERT INTO fruit VALUES (1, 'apple', 3), (2, 'pear', 5), (3, 'plum', 7);"+
			"UPDATE fruit SET qty = qty * 10 WHERE id = 2;"+
			"DELETE FROM fruit WHERE id = 3")
	// USER_STATISTICS counts DDL with the writes.
	writes := userDeltaWhen(t, shared, before, "the primary counts CREATE TABLE, INSERT, UPDATE, DELETE", func(d counts) bool {
		return d[shared.Primary.Name]["update"] >= 4
	})
	if w := writes[shared.Primary.Name]; w["update"] != 4 || w["select"] != 0 {
		t.Errorf("primary saw %v from the client's writes, want 4 updates (CREATE TABLE, INSERT, UPDATE, DELETE)", w)
	}
	for _, r := range shared.Replicas {
		if w := writes[r.Name]; w["update"] != 0 || w["select"] != 0 {
			t.Errorf("replica %s received %v from sluice during the writes", r.Name, w)
		}
	}
	syncReplicas(t, shared)

	t.Run("select", func(t *testing.T) {
		before := userCommands(t, shared)
		out := mariadbOK(t, addr, db, "-e", "SELECT id, name, qty FROM fruit ORDER BY id")
		if want := "id\tname\tqty\n1\tapple\t3\n2\tpear\t50\n"; out != want {
			t.Errorf("SELECT printed\n%s\nwant\n%s", out, want)
		}
		d := userDeltaWhen(t, shared, before, "a server counts the SELECT", func(d counts) bool { return total(d, shared.Servers, "select") >= 1 })
		if total(d, shared.Replicas, "select") != 1 || d[shared.Primary.Name]["select"] != 0 {
			t.Errorf("the client's SELECT was not served by exactly one replica: %v", d)
		}
	})

	t.Run("show databases", func(t *testing.T) {
		out := mariadbOK(t, addr, "-e", "SHOW DATABASES")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if lines[0] != "Database" {
			t.Fatalf("SHOW DATABASES header %q, want Database", lines[0])
		}
		for _, want := range []string{db, "information_schema", "mysql", "test"} {
			if !containsLine(lines[1:], want) {
				t.Errorf("SHOW DATABASES lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("vertical \\G", func(t *testing.T) {
		out := mariadbOK(t, addr, db, "-e", `SELECT id, name FROM fruit WHERE id = 2\G`)
		want := "*************************** 1. row ***************************\n  id: 2\nname: pear\n"
		if out != want {
			t.Errorf("\\G printed\n%q\nwant\n%q", out, want)
		}
	})

	t.Run("two statements in -e", func(t *testing.T) {
		// The client splits at ';' and sends two COM_QUERY packets.
		out := mariadbOK(t, addr, "-e", "SELECT 1; SELECT 2")
		if want := "1\n1\n2\n2\n"; out != want {
			t.Errorf("-e \"SELECT 1; SELECT 2\" printed %q, want %q", out, want)
		}
	})

	t.Run("multi-statement packet", func(t *testing.T) {
		// With another delimiter the client sends both statements in one
		// COM_QUERY (CLIENT_MULTI_STATEMENTS) and prints both results.
		before := userCommands(t, shared)
		out := mariadbOK(t, addr, db, "-e", "DELIMITER //\nSELECT COUNT(*) AS n FROM fruit; SELECT name FROM fruit WHERE id = 1//")
		if want := "n\n2\nname\napple\n"; out != want {
			t.Errorf("multi-statement printed %q, want %q", out, want)
		}
		d := userDeltaWhen(t, shared, before, "the servers count both SELECTs", func(d counts) bool { return total(d, shared.Servers, "select") >= 2 })
		if total(d, shared.Replicas, "select") != 2 || d[shared.Primary.Name]["select"] != 0 {
			t.Errorf("a read-only multi-statement was not served by a replica: %v", d)
		}
		// A multi-statement that writes goes to the primary as a whole and
		// its read sees the write.
		out = mariadbOK(t, addr, db, "-e", "DELIMITER //\nUPDATE fruit SET qty = 0 WHERE id = 1; SELECT @@port, qty FROM fruit WHERE id = 1//")
		if want := fmt.Sprintf("@@port\tqty\n%d\t0\n", shared.Primary.Port); out != want {
			t.Errorf("write+read multi-statement printed %q, want %q", out, want)
		}
		syncReplicas(t, shared)
	})
}

// counts are per-server statement counts, as userCommands returns them.
type counts = map[string]map[string]int64

// userDeltaWhen polls the app user's statement counts until cond holds for
// their change since before, and returns that change. MariaDB adds a
// statement to USER_STATISTICS only after it has sent the result, so a
// reading taken the moment the client has its answer can miss the last
// statements; the deadline turns a count that never arrives into a failure.
func userDeltaWhen(t testing.TB, topo *testbed.Topology, before counts, what string, cond func(counts) bool) counts {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := delta(userCommands(t, topo), before)
		if cond(d) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s; the app user's statements per server: %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// total adds one count over some servers.
func total(d counts, servers []*testbed.Server, key string) int64 {
	var n int64
	for _, s := range servers {
		n += d[s.Name][key]
	}
	return n
}

// statusVolatile matches the lines of the client's `status` that differ
// between two connections: ids, ports, uptime and the server's live figures.
var statusVolatile = regexp.MustCompile(`(?m)^(Connection id|TCP port|Uptime):.*$|^Threads: .*$`)

func normalizeStatus(s string) string {
	return statusVolatile.ReplaceAllString(s, "$1: -")
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

// TestMariadbClientOutputMatchesDirect runs the same reads through sluice and
// directly against the primary in every output format of the client: what a
// user sees must not change when sluice is put in between.
func TestMariadbClientOutputMatchesDirect(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared,
		"CREATE TABLE kinds (id INT PRIMARY KEY, i BIGINT, d DECIMAL(12,3), f DOUBLE, s VARCHAR(40), b VARBINARY(8), "+
			"dt DATETIME(3), j JSON, e ENUM('x','y'), n INT NULL, t TEXT) DEFAULT CHARSET=utf8mb4",
		"INSERT INTO kinds VALUES "+
			"(1, -9223372036854775808, 123456789.125, 1.5e300, 'tab\\there', x'00ff10', '2026-11-22 10:11:12.345', '{\"a\": [1, 2]}', 'y', NULL, REPEAT('long ', 30)),"+
			"(2, 42, -0.001, -0.25, 'grüße 日本 😀', '', '1970-01-01 00:00:00', 'null', 'x', 7, ''),"+
			"(3, 0, 0, 0, 'new\\nline and \"quotes\" <tag> & amp', NULL, NULL, NULL, NULL, NULL, NULL)",
	)
	queries := strings.Join([]string{
		"SELECT * FROM kinds ORDER BY id",
		"SELECT id, LENGTH(s), HEX(b), d * 2 AS twice FROM kinds WHERE id > 1 ORDER BY id",
		"SHOW TABLES",
		"DESCRIBE kinds",
		"SHOW CREATE TABLE kinds",
		"SELECT COUNT(*), SUM(d), MAX(dt) FROM kinds",
		"SELECT * FROM kinds WHERE id < 0",
		"SELECT 1 AS one, NULL AS nothing, 'x' AS letter",
	}, "; ")
	formats := [][]string{
		{"--batch"},
		{"--table"},
		{"--vertical"},
		{"--batch", "--raw", "--skip-column-names"},
		{"--batch", "--column-type-info"},
		{"--xml"},
		{"--html"},
		{"--table", "--binary-as-hex"},
	}
	before := userCommands(t, shared)
	for _, f := range formats {
		t.Run(strings.Join(f, " "), func(t *testing.T) {
			args := append(append([]string{db}, f...), "-e", queries)
			via := mariadbOK(t, sluiceAddr(p), args...)
			direct := mariadbOK(t, shared.Primary.Addr(), args...)
			if via != direct {
				t.Errorf("output through sluice differs from the primary's:\n--- direct\n%s\n--- sluice\n%s", direct, via)
			}
			if len(via) < 200 {
				t.Errorf("suspiciously short output:\n%s", via)
			}
		})
	}
	// The comparison is only worth something if sluice served the reads
	// from the replicas.
	// Five SELECTs per format each way (SHOW and DESCRIBE are not counted).
	want := int64(len(formats) * 5)
	d := userDeltaWhen(t, shared, before, "every SELECT is counted", func(d counts) bool {
		return total(d, shared.Servers, "select") >= 2*want
	})
	if got := total(d, shared.Replicas, "select"); got != want || d[shared.Primary.Name]["select"] != want {
		t.Errorf("SELECTs per server %v: want %d on the replicas (through sluice) and %d on the primary (direct)", d, want, want)
	}
	if got := total(d, shared.Servers, "update"); got != 0 {
		t.Errorf("reads caused writes: %v", d)
	}
	t.Logf("replicas served %d SELECTs through sluice, the primary %d directly", total(d, shared.Replicas, "select"), d[shared.Primary.Name]["select"])

	t.Run("status", func(t *testing.T) {
		// `status` shows the connection's character sets, server version
		// and COM_STATISTICS; only the ids, ports and live figures differ.
		raw := mariadbOK(t, sluiceAddr(p), db, "-e", "status")
		via := normalizeStatus(raw)
		direct := normalizeStatus(mariadbOK(t, shared.Primary.Addr(), db, "-e", "status"))
		if via != direct {
			t.Errorf("status through sluice differs from the primary's:\n--- direct\n%s\n--- sluice\n%s", direct, via)
		}
		if !regexp.MustCompile(`(?m)^Threads: \d+  Questions: \d+  Slow queries: \d+ .*Queries per second avg: [\d.]+$`).MatchString(raw) {
			t.Errorf("status lacks the COM_STATISTICS line:\n%s", raw)
		}
	})
}

// TestMariadbClientSourceTransaction runs a SQL file with `source`: the
// transaction in it stays on the primary, sees its own writes, and commits
// or rolls back as a whole.
func TestMariadbClientSourceTransaction(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared, "CREATE TABLE accounts (id INT PRIMARY KEY, balance INT NOT NULL)")
	file := filepath.Join(t.TempDir(), "transfer.sql")
	script := `-- a money transfer
START TRANSACTION;
INSERT INTO accounts VALUES (1, 100), (2, 50);
UPDATE accounts SET balance = balance - 30 WHERE id = 1;
UPDATE accounts SET balance = balance + 30 WHERE id = 2;
SELECT 'in transaction' AS step, id, balance, @@port FROM accounts ORDER BY id;
COMMIT;

BEGIN;
DELETE FROM accounts;
SELECT 'deleted' AS step, COUNT(*) AS n FROM accounts;
ROLLBACK;
`
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	before := userCommands(t, shared)
	out := mariadbOK(t, sluiceAddr(p), db, "--batch", "-e", "source "+file)
	pp := shared.Primary.Port
	want := fmt.Sprintf("step\tid\tbalance\t@@port\nin transaction\t1\t70\t%d\nin transaction\t2\t80\t%d\nstep\tn\ndeleted\t0\n", pp, pp)
	if out != want {
		t.Fatalf("source printed\n%s\nwant\n%s", out, want)
	}
	d := userDeltaWhen(t, shared, before, "the primary counts the script's statements", func(d counts) bool {
		return d[shared.Primary.Name]["update"] >= 4 && d[shared.Primary.Name]["select"] >= 2
	})
	for _, r := range shared.Replicas {
		if d[r.Name]["select"] != 0 || d[r.Name]["update"] != 0 {
			t.Errorf("replica %s served part of the transactions: %v", r.Name, d[r.Name])
		}
	}
	if pr := d[shared.Primary.Name]; pr["update"] != 4 || pr["select"] != 2 {
		t.Errorf("primary saw %v, want 4 writes and 2 selects", pr)
	}
	syncReplicas(t, shared)
	// The commit is there, the rollback left nothing behind: on the
	// replicas (through sluice) and on the primary.
	for _, addr := range []string{sluiceAddr(p), shared.Primary.Addr()} {
		if got := mariadbOK(t, addr, db, "-N", "-e", "SELECT GROUP_CONCAT(id, '=', balance ORDER BY id) FROM accounts"); got != "1=70,2=80\n" {
			t.Errorf("after the script %s has %q, want 1=70,2=80", addr, got)
		}
	}
}

// TestMariadbClientWrongPassword: the client prints the server's usual
// message for a failed login, word for word, and exits 1.
func TestMariadbClientWrongPassword(t *testing.T) {
	p := startSluice(t, sluiceOpts{})
	cases := []struct {
		name, user, password, want string
	}{
		{"wrong password", testbed.AppUser, "wrong", "ERROR 1045 (28000): Access denied for user 'app'@'127.0.0.1' (using password: YES)\n"},
		{"no password", testbed.AppUser, "", "ERROR 1045 (28000): Access denied for user 'app'@'127.0.0.1' (using password: NO)\n"},
		{"unknown user", "nobody", "secret", "ERROR 1045 (28000): Access denied for user 'nobody'@'127.0.0.1' (using password: YES)\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run := func(addr string) (string, string, error) {
				host, port, _ := net.SplitHostPort(addr)
				args := []string{"--no-defaults", "-h" + host, "-P" + port, "-u" + c.user, "-e", "SELECT 1"}
				if c.password != "" {
					args = append(args, "-p"+c.password)
				}
				ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
				defer cancel()
				cmd := exec.CommandContext(ctx, "mariadb", args...)
				var out, errb bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &errb
				err := cmd.Run()
				return out.String(), errb.String(), err
			}
			out, errOut, err := run(sluiceAddr(p))
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("exit: %v, want exit status 1", err)
			}
			if errOut != c.want || out != "" {
				t.Errorf("through sluice: stderr %q stdout %q, want stderr %q", errOut, out, c.want)
			}
			// The server says the same.
			_, direct, _ := run(shared.Primary.Addr())
			if direct != c.want {
				t.Errorf("the primary itself prints %q; the test's expectation %q is off", direct, c.want)
			}
		})
	}
}

// TestMariadbClientInteractive drives the client in a real terminal (a pty
// from util-linux `script`), prompt by prompt, as a person would: the
// welcome banner, USE with and without auto-rehash (which reads every
// table's columns with COM_FIELD_LIST), a SELECT, `status` (COM_STATISTICS),
// tab completion of a column name, and \q.
func TestMariadbClientInteractive(t *testing.T) {
	p := startSluice(t, sluiceOpts{yaml: "routing: {read_your_writes: false}\n"})
	db := newSchema(t, shared,
		"CREATE TABLE planets (id INT PRIMARY KEY, name VARCHAR(20), distinctive_moons INT)",
		"CREATE TABLE stars (id INT PRIMARY KEY, name VARCHAR(20))",
		"INSERT INTO planets VALUES (1, 'Mercury', 0), (2, 'Earth', 1), (3, 'Mars', 2)",
	)
	admin, err := shared.Primary.Admin()
	if err != nil {
		t.Fatal(err)
	}
	version := queryString(t, admin, "SELECT VERSION()")
	for _, rehash := range []bool{true, false} {
		name := "auto-rehash"
		var extra []string
		if !rehash {
			name = "no-auto-rehash"
			extra = []string{"--no-auto-rehash"}
		}
		t.Run(name, func(t *testing.T) {
			beforeStatus := counters(t, shared, "Com_show_fields")
			term := startTerminal(t, mariadbArgs(sluiceAddr(p), testbed.AppPassword, extra...))
			banner := term.expect("MariaDB [(none)]> ")
			for _, want := range []string{"Welcome to the MariaDB monitor.", "Server version: " + version + " ", "Your MariaDB connection id is "} {
				if !strings.Contains(banner, want) {
					t.Errorf("banner lacks %q:\n%s", want, banner)
				}
			}
			connID := regexp.MustCompile(`connection id is (\d+)`).FindStringSubmatch(banner)

			term.send("USE " + db)
			out := term.expect("MariaDB [" + db + "]> ")
			if !strings.Contains(out, "Database changed") {
				t.Errorf("USE printed:\n%s", out)
			}
			reading := strings.Contains(out, "Reading table information for completion")
			if reading != rehash {
				t.Errorf("auto-rehash=%v but the client said %q", rehash, out)
			}
			fieldLists := delta(counters(t, shared, "Com_show_fields"), beforeStatus)
			want := int64(0)
			if rehash {
				want = 2 // one COM_FIELD_LIST per table
			}
			if total(fieldLists, shared.Servers, "Com_show_fields") != want || fieldLists[shared.Primary.Name]["Com_show_fields"] != 0 {
				t.Errorf("COM_FIELD_LIST reached the servers %v, want %d in total on the replicas", fieldLists, want)
			}

			term.send("SELECT name, distinctive_moons FROM planets ORDER BY id;")
			out = term.expect("MariaDB [" + db + "]> ")
			table := "+---------+-------------------+\n" +
				"| name    | distinctive_moons |\n" +
				"+---------+-------------------+\n" +
				"| Mercury |                 0 |\n" +
				"| Earth   |                 1 |\n" +
				"| Mars    |                 2 |\n" +
				"+---------+-------------------+\n" +
				"3 rows in set"
			if !strings.Contains(out, table) {
				t.Errorf("SELECT printed:\n%s\nwant it to contain:\n%s", out, table)
			}

			term.send("status")
			out = term.expect("MariaDB [" + db + "]> ")
			for _, want := range []string{
				"Current database:\t" + db + "\n",
				"Current user:\t\tapp@127.0.0.1\n",
				"Server version:\t\t" + version + " ",
				"Protocol version:\t10\n",
				"TCP port:\t\t" + strconv.Itoa(p.Addr().(*net.TCPAddr).Port) + "\n",
				"Uptime:\t\t\t",            // COM_STATISTICS
				"Threads: ", "Questions: ", // COM_STATISTICS
			} {
				if !strings.Contains(out, want) {
					t.Errorf("status lacks %q:\n%s", want, out)
				}
			}
			if connID != nil && !strings.Contains(out, "Connection id:\t\t"+connID[1]+"\n") {
				t.Errorf("status shows another connection id than the banner (%s):\n%s", connID[1], out)
			}

			// Tab completion works from the column names COM_FIELD_LIST
			// returned; without auto-rehash there is nothing to complete.
			term.send("SELECT distinctive_m\t FROM planets WHERE id = 3;")
			out = term.expect("MariaDB [" + db + "]> ")
			if rehash {
				if !strings.Contains(out, "| distinctive_moons |") || !strings.Contains(out, "|                 2 |") {
					t.Errorf("tab completion did not complete the column:\n%s", out)
				}
			} else if !strings.Contains(out, "ERROR 1054 (42S22): Unknown column 'distinctive_m'") {
				t.Errorf("without auto-rehash a tab completed something:\n%s", out)
			}

			term.send(`\q`)
			out = term.expect("Bye")
			if err := term.wait(); err != nil {
				t.Errorf("client exit: %v\n%s", err, out)
			}
		})
	}
}

// terminal is the mariadb client running in a pseudo-terminal made by
// util-linux `script`, so it behaves as in a person's terminal (prompt,
// line editing, completion), driven by what it prints.
type terminal struct {
	t    testing.TB
	cmd  *exec.Cmd
	in   interface{ Write([]byte) (int, error) }
	done chan error

	mu   sync.Mutex
	raw  bytes.Buffer
	seen int // clean output already matched by expect
}

func startTerminal(t testing.TB, args []string) *terminal {
	t.Helper()
	quoted := make([]string, 0, len(args)+1)
	quoted = append(quoted, "exec mariadb")
	for _, a := range args {
		quoted = append(quoted, shellQuote(a))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*clientTimeout)
	cmd := exec.CommandContext(ctx, "script", "-qefc", strings.Join(quoted, " "), "/dev/null")
	// A known terminal type; no history file in the user's home.
	cmd.Env = append(os.Environ(), "TERM=xterm", "MYSQL_HISTFILE=/dev/null", "COLUMNS=200", "LINES=50")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	term := &terminal{t: t, cmd: cmd, in: in, done: make(chan error, 1)}
	cmd.Stdout = (*termWriter)(term)
	cmd.Stderr = (*termWriter)(term)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { term.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		in.Close()
		<-term.done
		if t.Failed() {
			t.Logf("terminal transcript:\n%s", term.clean())
		}
	})
	return term
}

type termWriter terminal

func (w *termWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.raw.Write(p)
}

// ansi matches the terminal control sequences editline and the client's
// highlighting emit.
var ansi = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>78])|\a`)

func (term *terminal) clean() string {
	term.mu.Lock()
	s := term.raw.String()
	term.mu.Unlock()
	s = ansi.ReplaceAllString(s, "")
	return strings.ReplaceAll(s, "\r", "")
}

// send types one line.
func (term *terminal) send(line string) {
	term.t.Helper()
	if _, err := term.in.Write([]byte(line + "\n")); err != nil {
		term.t.Fatalf("typing %q: %v", line, err)
	}
}

// expect waits until the output after the previous match contains want and
// returns that output up to and including want.
func (term *terminal) expect(want string) string {
	term.t.Helper()
	deadline := time.Now().Add(clientTimeout)
	for {
		s := term.clean()
		rest := s[min(term.seen, len(s)):]
		if i := strings.Index(rest, want); i >= 0 {
			term.seen += i + len(want)
			return rest[:i+len(want)]
		}
		select {
		case err := <-term.done:
			term.done <- err
			s = term.clean()
			if i := strings.Index(s[min(term.seen, len(s)):], want); i >= 0 {
				continue
			}
			term.t.Fatalf("the client exited (%v) before printing %q; after the last match it printed:\n%s", err, want, rest)
		default:
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("no %q within %s; after the last match the client printed:\n%s", want, clientTimeout, rest)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits for the client to exit.
func (term *terminal) wait() error {
	select {
	case err := <-term.done:
		term.done <- err
		return err
	case <-time.After(clientTimeout):
		return fmt.Errorf("the client did not exit within %s", clientTimeout)
	}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
