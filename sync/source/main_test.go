package source

import (
	"io"
	"log"
	"os"
	"testing"
)

// TestMain silences the test git server, which logs every request through
// the standard logger (and would split benchmark result lines).
func TestMain(m *testing.M) {
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}
