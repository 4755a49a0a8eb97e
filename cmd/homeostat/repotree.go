package main

import (
	"fmt"
	"os"
	"path/filepath"

	"homeostat.dev/homeostat/render"
)

// repoTree splits a folder given on the command line into the repository
// it belongs to (the nearest folder above it holding .git, or the folder
// itself outside a repository) and its path inside it: render's boundary
// for ../ references is the repository, not the folder.
func repoTree(dir string) (root, rel string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", dir, err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", dir, err)
	}
	if !info.IsDir() {
		return "", "", fmt.Errorf("%s: not a directory", dir)
	}
	for d := abs; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			rel, err := filepath.Rel(d, abs)
			return d, filepath.ToSlash(rel), err
		}
		if filepath.Dir(d) == d {
			return abs, ".", nil
		}
	}
}

// renderDir renders a folder of the working tree within its repository.
func renderDir(dir string) (render.Result, error) {
	root, rel, err := repoTree(dir)
	if err != nil {
		return render.Result{}, err
	}
	return render.RenderPath(os.DirFS(root), rel), nil
}
