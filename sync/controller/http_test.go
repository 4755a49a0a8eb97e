package controller

import (
	"path/filepath"
	"testing"

	"github.com/fluxcd/pkg/gittestserver"

	hsync "homeostat.dev/homeostat/sync"
)

func TestSyncOverHTTP(t *testing.T) {
	f := newFixture(t, "sync-http")
	srv := gittestserver.NewGitServer(t.TempDir())
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.StopHTTP)
	repo := newGitRepo(t, filepath.Join(srv.Root(), "apps.git"))
	repo.commit("over http", map[string]string{"apps/web.yaml": appYAML("web", f.ns, "nginx:1")})
	f.sync.Spec.URL = srv.HTTPAddress() + "/apps.git"
	if err := env.Client.Update(t.Context(), f.sync); err != nil {
		t.Fatal(err)
	}
	o := f.run(TriggerManual)
	mustSucceed(t, o)
	if o.Changes.Count(hsync.Created) != 3 || o.Revision.Message != "over http" {
		t.Fatalf("sync over HTTP: %s (revision %+v)", o.Changes, o.Revision)
	}
}
