// Package pgbin finds the PostgreSQL server binaries and runs them as an
// unprivileged user when homeostat itself runs as root: PostgreSQL refuses to
// run as root, while containers and CI machines commonly start as root.
package pgbin

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// EnvBinDir overrides where the PostgreSQL binaries are looked up.
const EnvBinDir = "HOMEOSTAT_PG_BINDIR"

// required are the programs a usable binary directory must hold.
var required = []string{"postgres", "initdb", "pg_ctl", "pg_basebackup"}

var (
	dirOnce sync.Once
	dirPath string
	dirErr  error
)

// Dir returns the directory of the PostgreSQL server binaries: $HOMEOSTAT_PG_BINDIR,
// else the directory of `postgres` on PATH (symlinks resolved), else
// `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin. A candidate
// counts only when it holds postgres, initdb, pg_ctl and pg_basebackup together,
// so that the programs always come from one version.
func Dir() (string, error) {
	dirOnce.Do(func() { dirPath, dirErr = findDir() })
	return dirPath, dirErr
}

func findDir() (string, error) {
	if d := os.Getenv(EnvBinDir); d != "" {
		if !complete(d) {
			return "", fmt.Errorf("%s=%s does not hold %s", EnvBinDir, d, strings.Join(required, ", "))
		}
		return d, nil
	}
	var candidates []string
	if p, err := exec.LookPath("postgres"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, filepath.Dir(r))
		}
		candidates = append(candidates, filepath.Dir(p))
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	candidates = append(candidates, globNewestFirst("/usr/lib/postgresql/*/bin")...)
	for _, c := range candidates {
		if complete(c) {
			return c, nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (%s) found on PATH, by pg_config or in /usr/lib/postgresql/*/bin: install the postgresql package or set %s",
		strings.Join(required, ", "), EnvBinDir)
}

func complete(dir string) bool {
	for _, name := range required {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.IsDir() {
			return false
		}
	}
	return true
}

// globNewestFirst orders /usr/lib/postgresql/<major>/bin by major version, newest first.
func globNewestFirst(pattern string) []string {
	dirs, _ := filepath.Glob(pattern)
	version := func(d string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return v
	}
	sort.SliceStable(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	return dirs
}

// Path returns the full path of one PostgreSQL program.
func Path(name string) (string, error) {
	d, err := Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(d, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found in %s: %w", name, d, err)
	}
	return p, nil
}

// Account is the operating-system user PostgreSQL runs as.
type Account struct {
	Name     string
	UID, GID int
}

var (
	accountOnce sync.Once
	account     *Account
	accountErr  error
)

// RunAs returns the account servers must run as, or nil when the current user
// may run them itself (it is not root). As root it is the `postgres` user the
// distribution packages create, else `nobody`; the choice is logged once.
func RunAs() (*Account, error) {
	accountOnce.Do(func() {
		if os.Geteuid() != 0 {
			return
		}
		for _, name := range []string{"postgres", "nobody"} {
			u, err := user.Lookup(name)
			if err != nil {
				continue
			}
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			account = &Account{Name: name, UID: uid, GID: gid}
			slog.Info("running PostgreSQL as an unprivileged user because homeostat runs as root", "user", name, "uid", uid)
			return
		}
		accountErr = fmt.Errorf("running as root and neither a postgres nor a nobody user exists to run PostgreSQL as")
	})
	return account, accountErr
}

// Command prepares a PostgreSQL program to run, as the unprivileged account
// when homeostat runs as root. It runs in "/" so that a working directory the
// account cannot read does not matter.
func Command(ctx context.Context, name string, args ...string) (*exec.Cmd, error) {
	p, err := Path(name)
	if err != nil {
		return nil, err
	}
	acct, err := RunAs()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, p, args...)
	cmd.Dir = "/"
	cmd.Env = os.Environ()
	if acct != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(acct.UID), Gid: uint32(acct.GID)}}
		cmd.Env = append(cmd.Env, "HOME=/", "USER="+acct.Name)
	}
	return cmd, nil
}

// Chown gives path and everything below it to the account PostgreSQL runs as;
// it does nothing when homeostat does not run as root.
func Chown(path string) error {
	acct, err := RunAs()
	if err != nil || acct == nil {
		return err
	}
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, acct.UID, acct.GID); err != nil {
			return fmt.Errorf("chown %s to %s: %w", p, acct.Name, err)
		}
		return nil
	})
}

// PrepareDir creates dir with the mode PostgreSQL demands (0700) owned by the
// account it runs as.
func PrepareDir(dir string, mode fs.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return Chown(dir)
}

// WriteFile writes a file the PostgreSQL account can read and nobody else can.
func WriteFile(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	return Chown(path)
}

// Postmaster is what a running server writes into postmaster.pid: how a
// command given only --pgdata finds the server's socket and port.
type Postmaster struct {
	PID       int
	Port      int
	SocketDir string
}

// ReadPostmaster reads DIR/postmaster.pid of a running server.
func ReadPostmaster(pgdata string) (Postmaster, error) {
	p := filepath.Join(pgdata, "postmaster.pid")
	data, err := os.ReadFile(p)
	if err != nil {
		return Postmaster{}, fmt.Errorf("read %s (is the server running?): %w", p, err)
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 5 {
		return Postmaster{}, fmt.Errorf("read %s: only %d lines", p, len(lines))
	}
	var pm Postmaster
	if pm.PID, err = strconv.Atoi(strings.TrimSpace(lines[0])); err != nil {
		return Postmaster{}, fmt.Errorf("read %s: pid: %w", p, err)
	}
	if pm.Port, err = strconv.Atoi(strings.TrimSpace(lines[3])); err != nil {
		return Postmaster{}, fmt.Errorf("read %s: port: %w", p, err)
	}
	pm.SocketDir = strings.TrimSpace(lines[4])
	return pm, nil
}
