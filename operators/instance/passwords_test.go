package instance_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// passwordsSet is what run logs once it has set the roles' passwords.
const passwordsSet = "role passwords set from secrets"

// waitLogged waits until the runner's output contains text.
func (r *runner) waitLogged(t *testing.T, text string) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("%q in the output of instance run", text), func() bool {
		return strings.Contains(r.out.String(), text)
	})
}

// tcpLogin logs in over TCP with a password, as a client of the cluster does.
func (n *node) tcpLogin(t *testing.T, user, password string) error {
	t.Helper()
	db := open(t, fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=postgres sslmode=disable connect_timeout=5",
		n.port, user, password))
	return db.Ping()
}

type loginCase struct {
	user, password string
	ok             bool
}

// checkLogins runs each login; a refused one must be refused for its
// password, not for anything else.
func (n *node) checkLogins(t *testing.T, cases []loginCase) {
	t.Helper()
	for _, c := range cases {
		err := n.tcpLogin(t, c.user, c.password)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s cannot log in with its password from the secrets: %v", c.user, err)
		case !c.ok && (err == nil || !strings.Contains(err.Error(), "password authentication failed")):
			t.Errorf("%s with an old or wrong password: got %v, want password authentication failed", c.user, err)
		}
	}
}

// The secrets are the source of truth: a directory initialised with one set
// of passwords (A), run with another (B, from the environment as a pod gets
// them), logs in with B only; a role that is missing (another owner) is
// created with LOGIN, and a password that is not given is left alone.
func TestRunSetsRolePasswordsFromSecrets(t *testing.T) {
	n := newNode(t, "data")
	homeostatOut(t, n.initArgs()...)

	r := n.runWith(t, []string{"HOMEOSTAT_SUPERUSER_PASSWORD=" + newSuperPassword,
		"HOMEOSTAT_REPLICATION_PASSWORD=" + newReplPassword, "HOMEOSTAT_APP_PASSWORD=" + newAppPassword})
	r.waitLogged(t, passwordsSet)
	if !strings.Contains(r.out.String(), "roles=\"[postgres streaming_replica app]\"") {
		t.Errorf("the log does not name the roles whose passwords were set:\n%s", r.out.String())
	}
	n.checkLogins(t, []loginCase{
		{"app", newAppPassword, true}, {"app", appPassword, false},
		{"streaming_replica", newReplPassword, true}, {"streaming_replica", replPassword, false},
		{"postgres", newSuperPassword, true}, {"postgres", superPassword, false},
	})
	r.stop(t)

	// The restored cluster names another owner, and only its password is
	// given this time.
	r = n.runWith(t, []string{"HOMEOSTAT_APP_PASSWORD=" + appPassword}, "--owner", "shop_owner")
	r.waitLogged(t, passwordsSet)
	n.checkLogins(t, []loginCase{
		{"shop_owner", appPassword, true}, {"shop_owner", "wrong", false},
		{"app", newAppPassword, true},
		{"streaming_replica", newReplPassword, true},
		{"postgres", newSuperPassword, true},
	})
	if got := queryString(t, n.superuser(t), "SELECT rolcanlogin::text FROM pg_roles WHERE rolname = 'shop_owner'"); got != "true" {
		t.Errorf("shop_owner created without LOGIN")
	}
}

// A replica's server is in recovery: run waits, sets nothing and logs no
// failure, and still stops at once on SIGTERM.
func TestRunLeavesAReplicaAlone(t *testing.T) {
	p := newNode(t, "primary")
	homeostatOut(t, p.initArgs()...)
	p.run(t)

	r := newNode(t, "replica")
	join := append([]string{"instance", "join"}, r.common()...)
	homeostatOut(t, append(join, "--primary", fmt.Sprintf("127.0.0.1:%d", p.port), "--name", "replica-1")...)
	run := r.runWith(t, []string{"HOMEOSTAT_REPLICATION_PASSWORD=" + newReplPassword})
	time.Sleep(3 * time.Second)
	run.stop(t)
	if out := run.out.String(); strings.Contains(out, passwordsSet) || strings.Contains(out, "setting role passwords failed") {
		t.Errorf("instance run on a replica set passwords or failed:\n%s", out)
	}
	p.checkLogins(t, []loginCase{{"streaming_replica", replPassword, true}})
}

// Rotating the replication secret: the primary and then the replica restart
// with the new password (as their pods do), the primary sets it on the role,
// the replica's passfile takes it, and streaming resumes.
func TestRotatedReplicationPasswordReachesTheReplica(t *testing.T) {
	p := newNode(t, "primary")
	homeostatOut(t, p.initArgs()...)
	pr := p.run(t)
	r := newNode(t, "replica")
	join := append([]string{"instance", "join"}, r.common()...)
	homeostatOut(t, append(join, "--primary", fmt.Sprintf("127.0.0.1:%d", p.port), "--name", "replica-1")...)
	rr := r.run(t)
	streaming := func(what string) {
		t.Helper()
		pdb := p.superuser(t)
		waitFor(t, 60*time.Second, what, func() bool {
			return queryString(t, pdb, "SELECT count(*)::text FROM pg_stat_replication WHERE state = 'streaming'") == "1"
		})
	}
	streaming("the replica streaming with the first password")

	rr.stop(t)
	pr.stop(t)
	rotated := []string{"HOMEOSTAT_REPLICATION_PASSWORD=" + newReplPassword}
	pr = p.runWith(t, rotated)
	pr.waitLogged(t, passwordsSet)
	p.checkLogins(t, []loginCase{{"streaming_replica", newReplPassword, true}, {"streaming_replica", replPassword, false}})
	r.runWith(t, rotated)
	streaming("the replica streaming again with the rotated password")
}
