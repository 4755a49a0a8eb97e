package postgres

import (
	"context"
	"fmt"
	"testing"

	"homeostat.dev/homeostat/internal/testenv"
)

// env is the package's real API server, started once.
var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// noPostgres is a Resolver for state-machine tests, where no instance runs.
func noPostgres(_ context.Context, ns, name string) (string, error) {
	return "", fmt.Errorf("no instance %s/%s in this test", ns, name)
}
