package instance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"homeostat.dev/homeostat/backup/pgbin"
)

// ExitImageVersionMismatch is instance run's exit code when the image's
// PostgreSQL binaries are of another major version than the data
// directory: the operator reports ImageVersionMismatch and stops the
// rolling update rather than replacing more pods with that image.
const ExitImageVersionMismatch = 5

// MajorMismatch is a data directory of one major version met by binaries
// of another: postgres would refuse it with a terse FATAL, so homeostat
// refuses first and says which is which.
type MajorMismatch struct {
	// Binaries is the major of `postgres --version`, Data the data
	// directory's PG_VERSION.
	Binaries, Data string
}

func (m *MajorMismatch) Error() string {
	return fmt.Sprintf("the image's binaries are PostgreSQL %s but the data directory is PostgreSQL %s (PG_VERSION): a data directory needs binaries of its own major version",
		m.Binaries, m.Data)
}

// versionRE finds the version in `postgres --version` ("postgres
// (PostgreSQL) 15.10 (Debian 15.10-1)"), and in a development build's
// "16beta1".
var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// serverMajor is a version's major as PG_VERSION writes it: "15" from
// 15.10 or 15beta1, "9.6" from 9.6.24.
func serverMajor(version string) (string, error) {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return "", fmt.Errorf("no PostgreSQL version in %q", strings.TrimSpace(version))
	}
	if len(m[1]) == 1 && m[2] != "" {
		return m[1] + "." + m[2], nil
	}
	return m[1], nil
}

// dataMajor is the major version in a data directory's PG_VERSION.
func dataMajor(pgdata string) (string, error) {
	b, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION"))
	if err != nil {
		return "", fmt.Errorf("read the data directory's major version: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// checkMajor compares the major of the postgres binary about to run with
// the data directory's; a *MajorMismatch when they differ.
func checkMajor(ctx context.Context, pgdata string) error {
	data, err := dataMajor(pgdata)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd, err := pgbin.Command(ctx, "postgres", "--version")
	if err != nil {
		return err
	}
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("postgres --version: %w", err)
	}
	bin, err := serverMajor(string(out))
	if err != nil {
		return fmt.Errorf("postgres --version: %w", err)
	}
	if bin != data {
		return &MajorMismatch{Binaries: bin, Data: data}
	}
	return nil
}

// refuseOtherMajor is Run's check before postgres starts: the exit code
// and error when the binaries cannot run this data directory.
func refuseOtherMajor(opts RunOptions, log *slog.Logger) (int, error) {
	err := checkMajor(context.Background(), opts.PGData)
	var mm *MajorMismatch
	if errors.As(err, &mm) {
		writeTerminationLog(opts.TerminationLog, mm.Error())
		log.Error("refusing to start postgres", "err", err)
		return ExitImageVersionMismatch, err
	}
	return 1, err
}

// writeTerminationLog leaves msg where the kubelet reads the container's
// termination message (nothing when path is empty).
func writeTerminationLog(path, msg string) {
	if path != "" {
		_ = os.WriteFile(path, []byte(msg), 0o644)
	}
}
