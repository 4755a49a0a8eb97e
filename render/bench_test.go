package render

import (
	"fmt"
	"os"
	"testing"
	"testing/fstest"
)

// BenchmarkRender1000Apps renders a tree of 1,000 Apps, one file each in 20
// team folders, with the fields a real App uses (env, a secret, a domain
// with TLS, health check, resources; every fourth autoscaled, every fifth
// with a database), plus the teams' Namespaces.
func BenchmarkRender1000Apps(b *testing.B) {
	fsys := thousandApps()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		objs, problems := Render(fsys)
		if len(problems) > 0 {
			b.Fatalf("problems: %v", problems)
		}
		if len(objs) < 4000 {
			b.Fatalf("rendered only %d objects", len(objs))
		}
	}
}

func thousandApps() fstest.MapFS {
	fsys := fstest.MapFS{}
	for team := 0; team < 20; team++ {
		fsys[fmt.Sprintf("team-%02d/namespace.yaml", team)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(
			"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-%02d\n", team))}
	}
	for i := 0; i < 1000; i++ {
		team := i % 20
		extra := ""
		if i%4 == 0 {
			extra += "  autoscale: {min: 2, max: 10, cpuPercent: 70}\n"
		} else {
			extra += "  replicas: 2\n"
		}
		if i%5 == 0 {
			extra += fmt.Sprintf("  postgres: {name: db-%04d}\n", i)
		}
		fsys[fmt.Sprintf("team-%02d/app-%04d.yaml", team, i)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(`apiVersion: homeostat.dev/v1alpha1
kind: App
metadata:
  name: app-%04d
  namespace: team-%02d
spec:
  image: registry.example.com/team-%02d/app-%04d:1.%d.0
  port: 8080
  env:
    LOG_LEVEL: info
    REGION: eu-west-1
    FEATURE_FLAGS: "a,b,c"
  secretEnv:
    API_KEY: {secret: app-%04d-secrets, key: api-key}
  domains: [app-%04d.example.com]
  tls: {issuer: letsencrypt}
  healthCheck: {path: /healthz}
  resources: {cpu: 250m, memory: 256Mi}
%s`, i, team, team, i, i%10, i, i, extra))}
	}
	return fsys
}

// BenchmarkRenderExamples renders examples/: a few of each kind and one
// kustomize overlay, which dominates (kustomize builds from an in-memory copy
// of the tree).
func BenchmarkRenderExamples(b *testing.B) {
	fsys := os.DirFS("../examples")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, problems := Render(fsys); len(problems) > 0 {
			b.Fatalf("problems: %v", problems)
		}
	}
}
