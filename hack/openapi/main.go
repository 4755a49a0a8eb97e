// Command openapi writes the OpenAPI v3 schemas of the built-in Kubernetes
// kinds, as served by the kube-apiserver homeostat is built and tested
// against, to render/schema/builtin.json.gz (and their Kubernetes version to
// builtin.version beside it), which the schema package
// embeds so that `homeostat validate` works offline. It starts the test
// API server (bin/kube-apiserver via internal/testenv) once; run it with
// `make schemas` after a Kubernetes version bump and commit the file.
package main

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"runtime/debug"
	"sort"
	"strings"

	"k8s.io/client-go/discovery"

	"homeostat.dev/homeostat/internal/testenv"
)

func main() {
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "openapi:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	if err != nil {
		return err
	}
	ver, err := dc.ServerVersion()
	if err != nil {
		return err
	}
	paths, err := dc.OpenAPIV3().Paths()
	if err != nil {
		return fmt.Errorf("openapi v3 index: %w", err)
	}
	k8sVersion := kubernetesVersion(ver.GitVersion)
	set := map[string]any{"kubernetesVersion": k8sVersion}
	docs := map[string]any{}
	names := make([]string, 0, len(paths))
	for p := range paths {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		// Built-in groups only: homeostat's own kinds come from its CRDs,
		// like every other custom kind.
		if !builtinGroupVersion(p) {
			continue
		}
		data, err := paths[p].Schema("application/json")
		if err != nil {
			return fmt.Errorf("openapi v3 %s: %w", p, err)
		}
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("openapi v3 %s: %w", p, err)
		}
		comps, _ := doc["components"].(map[string]any)
		schemas, _ := comps["schemas"].(map[string]any)
		strip(schemas)
		docs[p] = schemas
	}
	set["schemas"] = docs
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err := json.NewEncoder(zw).Encode(set); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// The version beside the schemas, read without decompressing them.
	return os.WriteFile(strings.TrimSuffix(out, ".json.gz")+".version", []byte(k8sVersion+"\n"), 0o644)
}

// builtinGroupVersion reports "api/v1" and "apis/GROUP/VERSION" paths of
// the built-in groups: homeostat's own kinds come from its CRDs, like every
// other custom kind, and "apis/GROUP" paths hold no schemas.
func builtinGroupVersion(p string) bool {
	if p == "api/v1" {
		return true
	}
	parts := strings.Split(p, "/")
	return len(parts) == 3 && parts[0] == "apis" && parts[1] != "homeostat.dev"
}

// kubernetesVersion names the version the schemas are of: the server's,
// unless it was built from modules without version stamps, then that of
// the k8s.io/api module it was built with (v0.37.2 is Kubernetes 1.37.2).
func kubernetesVersion(server string) string {
	if !strings.HasPrefix(server, "v0.0.0") {
		return server
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "k8s.io/api" {
				return "v1" + strings.TrimPrefix(m.Version, "v0")
			}
		}
	}
	return server
}

// strip drops descriptions, which are most of the bytes and never checked.
func strip(v any) {
	switch t := v.(type) {
	case map[string]any:
		delete(t, "description")
		for k, e := range t {
			if k == "properties" {
				// Property names are data here: a property may be called
				// "description".
				for _, p := range e.(map[string]any) {
					strip(p)
				}
				continue
			}
			strip(e)
		}
	case []any:
		for _, e := range t {
			strip(e)
		}
	}
}
