package postgres

import (
	"context"
	"fmt"
	"os"
	"testing"

	"homeostat.dev/homeostat/internal/testenv"
)

// env is the package's real API server, started once.
var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start test API server:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop test API server:", err)
	}
	os.Exit(code)
}

// noPostgres is a Resolver for state-machine tests, where no instance runs.
func noPostgres(_ context.Context, ns, name string) (string, error) {
	return "", fmt.Errorf("no instance %s/%s in this test", ns, name)
}
