package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

func init() { register(newCopySelfCommand) }

// newCopySelfCommand is what the init container of a PostgreSQL or CI pod
// runs: the homeostat image is distroless (no shell, no cp), so the binary
// copies itself into the shared volume the main container runs it from.
func newCopySelfCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "copy-self DEST",
		Short: "Copy this binary to DEST (used by init containers)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return copySelf(args[0])
		},
	}
}

func copySelf(dest string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	// Write beside the destination and rename, so a restarted init container
	// never leaves a half-written binary in place.
	tmp := dest + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return fmt.Errorf("copy-self: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("copy-self to %s: %w", dest, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dest)
}
