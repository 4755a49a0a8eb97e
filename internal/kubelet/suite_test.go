package kubelet

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"homeostat.dev/homeostat/internal/testenv"
)

var (
	env *testenv.Env
	// fakeHomeostat stands in for the homeostat binary: the harness runs
	// whatever Binary it is given, and these tests are about the harness.
	fakeHomeostat string
)

const fakeScript = `#!/bin/sh
cmd=$1; shift
case "$cmd" in
copy-self) cp "$0" "$1" ;;
sleep) exec sleep "$1" ;;
exit) exit "$1" ;;
env) printf '%s' "$GREETING" > "$1" ;;
kubeconfig) printf '%s' "$KUBECONFIG" > "$1" ;;
serve) FAKE_SERVE_PORT="$2" exec "$KUBELET_TEST_BINARY" ;;
esac
`

func TestMain(m *testing.M) {
	// The fake binary's "serve" runs this test binary as a small HTTP
	// server (on 127.0.0.1 and the port given, or on the address given),
	// so the tests need nothing beyond /bin/sh.
	if port := os.Getenv("FAKE_SERVE_PORT"); port != "" {
		addr := port
		if !strings.Contains(port, ":") {
			addr = "127.0.0.1:" + port
		}
		fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, http.FileServer(http.Dir("."))))
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "kubelet-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fakeHomeostat = filepath.Join(dir, "homeostat")
	if err := os.WriteFile(fakeHomeostat, []byte(fakeScript), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start test API server:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
