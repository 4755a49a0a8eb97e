package instance_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/lib/pq"

	"homeostat.dev/homeostat/internal/pgtest"
	"homeostat.dev/homeostat/operators/instance"
)

// homeostat is the real binary, built once: the tests run `homeostat
// instance ...` as processes, the way a pod does.
var homeostat string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "homeostat-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if homeostat, err = pgtest.BuildHomeostat(dir); err != nil {
		fmt.Fprintln(os.Stderr, "instance tests:", err)
		return 1
	}
	return m.Run()
}

// Test passwords; every test checks they never show up in output or files.
const (
	superPassword = "super-Secret-1"
	replPassword  = "repl-Secret-2"
	appPassword   = "app-Secret-3"
	// What another cluster's secrets (or rotated ones) hold.
	newSuperPassword = "super-Other-4"
	newReplPassword  = "repl-Other-5"
	newAppPassword   = "app-Other-6"
)

// node is one instance directory: data dir, socket dir, port, password files.
type node struct {
	base, pgdata string
	port         int
	secrets      string
}

func newNode(t testing.TB, name string) *node {
	t.Helper()
	base, err := pgtest.TempDir("homeostat-instance-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	n := &node{base: base, pgdata: filepath.Join(base, name), port: port}
	n.useSecrets(t, superPassword, replPassword, appPassword)
	return n
}

// useSecrets gives the node fresh password files.
func (n *node) useSecrets(t testing.TB, super, repl, app string) {
	t.Helper()
	n.secrets = t.TempDir()
	for file, pw := range map[string]string{"super": super, "repl": repl, "app": app} {
		if err := os.WriteFile(filepath.Join(n.secrets, file), []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// passwordFlags name the node's three password files.
func (n *node) passwordFlags() []string {
	return []string{"--superuser-password-file", filepath.Join(n.secrets, "super"),
		"--replication-password-file", filepath.Join(n.secrets, "repl"), "--app-password-file", filepath.Join(n.secrets, "app")}
}

// common are the flags init and join share.
func (n *node) common() []string {
	return []string{"--pgdata", n.pgdata, "--port", strconv.Itoa(n.port), "--socket-dir", n.base,
		"--listen-addresses", "127.0.0.1", "--replication-password-file", filepath.Join(n.secrets, "repl"),
		"--parameter", "fsync=off"}
}

func (n *node) initArgs(extra ...string) []string {
	args := append([]string{"instance", "init"}, n.common()...)
	args = append(args, "--superuser-password-file", filepath.Join(n.secrets, "super"),
		"--app-password-file", filepath.Join(n.secrets, "app"))
	return append(args, extra...)
}

// homeostatOut runs homeostat and fails the test on a non-zero exit.
func homeostatOut(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(homeostat, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("homeostat %v: %v\n%s", args, err, stderr.String())
	}
	noSecrets(t, "output of homeostat "+args[1], string(out)+stderr.String())
	return string(out)
}

func noSecrets(t testing.TB, where, text string) {
	t.Helper()
	for _, pw := range []string{superPassword, replPassword, appPassword, newSuperPassword, newReplPassword, newAppPassword} {
		if bytes.Contains([]byte(text), []byte(pw)) {
			t.Errorf("%s contains a password", where)
		}
	}
}

// lockedBuffer collects a child's output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runner is a running `homeostat instance run`.
type runner struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	code   int
}

func (n *node) run(t testing.TB) *runner {
	t.Helper()
	return n.runWith(t, nil)
}

// runWith runs with extra environment variables (NAME=value) and flags.
func (n *node) runWith(t testing.TB, env []string, flags ...string) *runner {
	t.Helper()
	args := append([]string{"instance", "run", "--pgdata", n.pgdata, "--grace", "10s"}, flags...)
	r := &runner{cmd: exec.Command(homeostat, args...), out: &lockedBuffer{}, exited: make(chan struct{})}
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = r.cmd.Wait()
		r.code = r.cmd.ProcessState.ExitCode()
		close(r.exited)
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(20 * time.Second):
			_ = r.cmd.Process.Kill()
		}
		noSecrets(t, "the server log", r.out.String())
	})
	db := n.superuser(t)
	waitFor(t, 60*time.Second, "postgres on "+n.pgdata+" to accept connections\n"+r.out.String(), func() bool {
		select {
		case <-r.exited:
			t.Fatalf("instance run exited with %d:\n%s", r.code, r.out.String())
		default:
		}
		return db.Ping() == nil
	})
	return r
}

// stop asks for a fast shutdown and waits for the exit.
func (r *runner) stop(t testing.TB) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("after SIGTERM instance run exited %d, want 0:\n%s", code, r.out.String())
	}
}

// wait waits for the runner to exit and returns its exit code.
func (r *runner) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-r.exited:
		return r.code
	case <-time.After(timeout):
		t.Fatalf("instance run still running after %s:\n%s", timeout, r.out.String())
		return -1
	}
}

// superuser connects over the unix socket, trusted.
func (n *node) superuser(t testing.TB) *sql.DB {
	t.Helper()
	return open(t, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", n.base, n.port))
}

func open(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxIdleConns(1)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func (n *node) status(t testing.TB) instance.Status {
	t.Helper()
	var st instance.Status
	out := homeostatOut(t, "instance", "status", "--pgdata", n.pgdata)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status printed %q: %v", out, err)
	}
	return st
}

func waitFor(t testing.TB, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func queryString(t testing.TB, db *sql.DB, query string) string {
	t.Helper()
	var s string
	if err := db.QueryRow(query).Scan(&s); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return s
}
