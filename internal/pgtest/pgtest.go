// Package pgtest runs throwaway PostgreSQL servers for tests: initdb into a
// temporary directory, postgres on a free 127.0.0.1 port and a private unix
// socket, as the unprivileged postgres account when the tests run as root. It
// also builds the homeostat binary once, for tests that run it as a process
// (archive_command, `homeostat instance run`).
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/lib/pq" // the "postgres" database/sql driver

	"homeostat.dev/homeostat/backup/pgbin"
)

// Superuser is the role Init creates; local connections trust it.
const Superuser = "postgres"

// TempDir makes a fresh directory under the system temp dir that the
// PostgreSQL account can enter (0755, owned by it); remove it when done.
func TempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	return dir, pgbin.Chown(dir)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Init creates a data directory with initdb: superuser "postgres", trust
// authentication, checksums on, no fsync (tests do not survive power loss).
func Init(dataDir string) error {
	if err := pgbin.PrepareDir(dataDir, 0o700); err != nil {
		return err
	}
	cmd, err := pgbin.Command(context.Background(), "initdb", "-D", dataDir, "-U", Superuser, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--data-checksums", "--no-sync")
	if err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w: %s", dataDir, err, out)
	}
	return nil
}

// Server is a running postgres.
type Server struct {
	DataDir   string
	SocketDir string
	Port      int

	cmd     *exec.Cmd
	exited  chan struct{} // closed when postgres ended; err is then its Wait error
	err     error
	logPath string
	ownDir  string
}

// Options configure Start.
type Options struct {
	// Settings become `-c name=value` arguments, which override the
	// configuration files.
	Settings map[string]string
	// Env is added to the server's environment (archive_command sees it).
	Env []string
}

// New makes a temporary directory, runs Init and starts a server there;
// Close removes everything again.
func New(opts Options) (*Server, error) {
	dir, err := TempDir("homeostat-pg-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := Init(data); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s, err := Start(data, opts)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s.ownDir = dir
	return s, nil
}

// Start runs postgres on an existing data directory (from Init or a restore)
// listening on 127.0.0.1 at a free port and on a unix socket in the data
// directory's parent, and waits until it accepts connections. A server still
// in archive recovery counts as started once it accepts read-only queries;
// see WaitPromoted.
func Start(dataDir string, opts Options) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{DataDir: dataDir, SocketDir: filepath.Dir(dataDir), Port: port,
		logPath: filepath.Join(filepath.Dir(dataDir), filepath.Base(dataDir)+".log")}
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": s.SocketDir,
		"fsync":                   "off",
		"logging_collector":       "off",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	args := []string{"-D", dataDir, "-p", strconv.Itoa(port)}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	cmd, err := pgbin.Command(context.Background(), "postgres", args...)
	if err != nil {
		return nil, err
	}
	cmd.Env = append(cmd.Env, opts.Env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := pgbin.Chown(filepath.Dir(dataDir)); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres on %s: %w", dataDir, err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	if err := s.wait(60*time.Second, "SELECT 1", func(*sql.Row) bool { return true }); err != nil {
		_ = s.Stop()
		return nil, err
	}
	return s, nil
}

// DSN is a lib/pq connection string over the unix socket as the superuser.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.SocketDir, s.Port, Superuser, db)
}

// DB opens a connection pool to database db as the superuser.
func (s *Server) DB(db string) (*sql.DB, error) { return sql.Open("postgres", s.DSN(db)) }

// Log is the server's log so far, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// WaitPromoted waits until the server has left recovery (a restored
// directory reached its target and promoted).
func (s *Server) WaitPromoted(timeout time.Duration) error {
	return s.wait(timeout, "SELECT NOT pg_is_in_recovery()", func(r *sql.Row) bool {
		var ok bool
		return r.Scan(&ok) == nil && ok
	})
}

func (s *Server) wait(timeout time.Duration, query string, done func(*sql.Row) bool) error {
	db, err := s.DB("postgres")
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("postgres on %s exited: %w\n%s", s.DataDir, s.err, tail(s.Log()))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		row := db.QueryRowContext(ctx, query)
		ok := row.Err() == nil && done(row)
		cancel()
		if ok {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("postgres on %s: %q not true within %s\n%s", s.DataDir, query, timeout, tail(s.Log()))
}

func tail(s string) string {
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return strings.TrimSpace(s)
}

// Stop shuts the server down (fast shutdown, then a kill after 30 s).
func (s *Server) Stop() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
	return nil
}

// Close stops the server and removes the directory New made.
func (s *Server) Close() error {
	err := s.Stop()
	if s.ownDir != "" {
		if rerr := os.RemoveAll(s.ownDir); err == nil {
			err = rerr
		}
	}
	return err
}

// EnvTestBinary names a prebuilt homeostat binary for BuildHomeostat to use
// instead of building one (it must be executable by the postgres account).
const EnvTestBinary = "HOMEOSTAT_TEST_BINARY"

// BuildHomeostat builds ./cmd/homeostat of this module into dir and returns
// the binary's path; a package's TestMain calls it once. $HOMEOSTAT_TEST_BINARY
// overrides it with a prebuilt binary.
func BuildHomeostat(dir string) (string, error) {
	if p := os.Getenv(EnvTestBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w", EnvTestBinary, err)
		}
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "homeostat")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/homeostat")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/homeostat: %w: %s", err, b)
	}
	return out, os.Chmod(dir, 0o755)
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
