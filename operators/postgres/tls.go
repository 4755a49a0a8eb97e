package postgres

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/lib/pq"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// Keys of the TLS Secrets: the server Secret is a kubernetes.io/tls Secret
// as cert-manager writes it (tls.crt, tls.key, ca.crt); the CA Secret holds
// the operator's own CA (ca.crt, ca.key) and is never mounted anywhere.
const (
	keyTLSCert = "tls.crt"
	keyTLSKey  = "tls.key"
	keyCACert  = "ca.crt"
	keyCAKey   = "ca.key"
)

// tlsVolume is the name of the volume that mounts the server Secret into
// instance pods and Jobs; a pod without it was made before TLS existed.
const tlsVolume = "tls"

// CASecretName is the Secret holding a cluster's own certificate authority.
func CASecretName(cluster string) string { return cluster + "-ca" }

// ServerSecretName is the Secret holding a cluster's server certificate,
// its key and the CA that signed it.
func ServerSecretName(cluster string) string { return cluster + "-server" }

// TLSServerName is the name the operator verifies an instance's
// certificate against: every instance serves the cluster's one server
// certificate, so the -rw Service's name proves the cluster, whatever
// address (a pod IP) the connection went to.
func TLSServerName(pg *v1alpha1.Postgres) string { return RWHost(pg) }

// ServerHosts are the names the server certificate is valid for: the -rw,
// -ro and -r Services in every form a client inside the cluster may use,
// each instance's name (its pod's hostname), and the loopback names, so a
// connection from inside the pod or through `kubectl port-forward` verifies
// too.
func ServerHosts(pg *v1alpha1.Postgres, instances []string) []string {
	var hosts []string
	for _, svc := range []string{RWService(pg.Name), ROService(pg.Name), pg.Name + "-r"} {
		hosts = append(hosts, svc, svc+"."+pg.Namespace, svc+"."+pg.Namespace+".svc", svc+"."+pg.Namespace+".svc.cluster.local")
	}
	sorted := slices.Clone(instances)
	slices.Sort(sorted)
	hosts = append(hosts, sorted...)
	return append(hosts, "localhost", "127.0.0.1", "::1")
}

// superLogin is how the operator logs in to an instance as the superuser: the
// password, and the cluster CA the server must prove itself against (none
// for a pod made before TLS existed, which serves no TLS).
type superLogin struct {
	password string
	ca       []byte
	// serverName is what the certificate must name (TLSServerName).
	serverName string
}

// login is the superuser login for one instance of the cluster: with
// verify-full TLS when its pod mounts the server certificate.
func (c *cluster) login(instance string) superLogin {
	l := superLogin{password: c.password}
	if pod := c.pods[instance]; pod != nil && podHasTLS(pod) && len(c.ca) > 0 {
		l.ca, l.serverName = c.ca, TLSServerName(c.pg)
	}
	return l
}

// podHasTLS says whether the pod mounts the server certificate, i.e. its
// instance serves TLS and requires it for network logins.
func podHasTLS(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == tlsVolume })
}

// pgConn opens a connection as the superuser to the instance at addr: with
// verify-full TLS against l.serverName when l carries a CA, dialling addr
// whatever name the certificate is checked against.
func pgConn(addr string, l superLogin) (*sql.DB, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("instance address %q: %w", addr, err)
	}
	sslmode := "sslmode=disable"
	if len(l.ca) > 0 {
		host = l.serverName
		key, err := registerVerifyFull(l.ca, l.serverName)
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", addr, err)
		}
		sslmode = "sslmode=pqgo-" + key
	}
	cfg, err := pq.NewConfig(fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=postgres %s connect_timeout=5 application_name=homeostat-operator",
		host, port, superuserName, quoteConnValue(l.password), sslmode))
	if err != nil {
		return nil, fmt.Errorf("connection settings for %s: %w", addr, err)
	}
	conn, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("connection settings for %s: %w", addr, err)
	}
	conn.Dialer(fixedDialer{addr: addr})
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(1)
	return db, nil
}

// registerVerifyFull registers with lib/pq the TLS settings of verify-full
// against ca for serverName (lib/pq reads a root certificate only from a
// file otherwise), under a key naming both, so each cluster registers once.
func registerVerifyFull(ca []byte, serverName string) (string, error) {
	sum := sha256.Sum256(append(append([]byte(serverName), 0), ca...))
	key := "homeostat-" + hex.EncodeToString(sum[:12])
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return "", errors.New("the cluster CA does not parse")
	}
	err := pq.RegisterTLSConfig(key, &tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS12})
	return key, err
}

// fixedDialer dials one address whatever host the connection names, so the
// certificate is checked against the cluster's name while the connection
// goes to the resolved instance.
type fixedDialer struct{ addr string }

func (d fixedDialer) Dial(network, _ string) (net.Conn, error) {
	return net.Dial(network, d.addr)
}

func (d fixedDialer) DialTimeout(network, _ string, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout(network, d.addr, timeout)
}

func (d fixedDialer) DialContext(ctx context.Context, network, _ string) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(ctx, network, d.addr)
}

// ensureTLS makes sure the cluster has a server certificate (from its own
// CA, or from cert-manager when spec.tls.issuer is set), renews the own one
// before it expires, keeps the app Secret's verify-full settings in step,
// and reads the CA the operator verifies instances against.
func (r *PostgresReconciler) ensureTLS(ctx context.Context, c *cluster) error {
	hosts, err := r.serverHosts(ctx, c.pg)
	if err != nil {
		return err
	}
	if tlsIssuer(c.pg) == nil {
		// The CA it just made or read: a cached read of the Secret it
		// just wrote could still miss it.
		if c.ca, err = r.ensureOwnCertificate(ctx, c.pg, hosts); err != nil {
			return err
		}
		return r.ensureAppSecretTLS(ctx, c.pg, c.ca)
	}
	if err := r.ensureCertificate(ctx, c.pg, hosts); err != nil {
		return err
	}
	var server corev1.Secret
	err = r.Get(ctx, client.ObjectKey{Namespace: c.pg.Namespace, Name: ServerSecretName(c.pg.Name)}, &server)
	if apierrors.IsNotFound(err) {
		return c.wait(PhaseBootstrapping, "waiting for cert-manager to write secret %s", ServerSecretName(c.pg.Name))
	}
	if err != nil {
		return fmt.Errorf("read secret %s: %w", ServerSecretName(c.pg.Name), err)
	}
	if len(server.Data[keyCACert]) == 0 || len(server.Data[keyTLSCert]) == 0 || len(server.Data[keyTLSKey]) == 0 {
		return c.wait(PhaseBootstrapping, "secret %s has no %s, %s and %s yet (an issuer must put its CA in %s)",
			server.Name, keyTLSCert, keyTLSKey, keyCACert, keyCACert)
	}
	c.ca = server.Data[keyCACert]
	return r.ensureAppSecretTLS(ctx, c.pg, c.ca)
}

// serverHosts are ServerHosts for the cluster's current instances (its
// volume claims).
func (r *PostgresReconciler) serverHosts(ctx context.Context, pg *v1alpha1.Postgres) ([]string, error) {
	var pvcs corev1.PersistentVolumeClaimList
	if err := r.List(ctx, &pvcs, client.InNamespace(pg.Namespace), client.MatchingLabels{LabelCluster: pg.Name}); err != nil {
		return nil, fmt.Errorf("list volume claims: %w", err)
	}
	var names []string
	for _, p := range pvcs.Items {
		if p.DeletionTimestamp.IsZero() {
			names = append(names, p.Name)
		}
	}
	return ServerHosts(pg, names), nil
}

// ensureOwnCertificate creates the cluster's CA once, and issues the
// server certificate when it is missing or renewal says so. A renewed
// certificate reaches the instances through the mounted Secret; their
// managers reload postgres without a restart.
func (r *PostgresReconciler) ensureOwnCertificate(ctx context.Context, pg *v1alpha1.Postgres, hosts []string) ([]byte, error) {
	ca, err := r.ensureCA(ctx, pg)
	if err != nil {
		return nil, err
	}
	var server corev1.Secret
	err = r.Get(ctx, client.ObjectKey{Namespace: pg.Namespace, Name: ServerSecretName(pg.Name)}, &server)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("read secret %s: %w", ServerSecretName(pg.Name), err)
	}
	exists := err == nil
	reason := "it does not exist"
	if exists {
		reason = renewal(server.Data[keyTLSCert], ca.Cert, hosts, r.now())
		if reason == "" && !samePEM(server.Data[keyCACert], ca.Cert) {
			reason = "its ca.crt is not the cluster's CA"
		}
	}
	if reason == "" {
		return ca.Cert, nil
	}
	if exists && server.Labels["controller.cert-manager.io/fao"] != "" || strings.HasPrefix(reason, "it does not verify against the CA") {
		// Signed by someone else: cert-manager, while spec.tls.issuer was
		// set. Its Certificate goes first, or it would write the Secret
		// back.
		if err := r.dropCertificate(ctx, pg); err != nil {
			return nil, err
		}
	}
	pair, err := newServerCert(r.Rand, ca, hosts, r.now(), r.serverCertLifetime())
	if err != nil {
		return nil, err
	}
	want := serverSecret(pg, pair, ca.Cert)
	if exists {
		server.Data, server.Type = want.Data, want.Type
		err = r.Update(ctx, &server)
	} else {
		err = r.Create(ctx, want)
	}
	if err != nil {
		return nil, fmt.Errorf("write secret %s: %w", want.Name, err)
	}
	r.event(pg, "CertificateIssued", "server certificate %s (serial %s) issued: %s", want.Name, certSerial(pair.Cert), reason)
	return ca.Cert, nil
}

// ensureCA reads the cluster's CA, creating it on first use and renewing
// its certificate (same key) with a third of its lifetime left.
func (r *PostgresReconciler) ensureCA(ctx context.Context, pg *v1alpha1.Postgres) (keyPair, error) {
	var s corev1.Secret
	err := r.Get(ctx, client.ObjectKey{Namespace: pg.Namespace, Name: CASecretName(pg.Name)}, &s)
	if err == nil {
		ca := keyPair{Cert: s.Data[keyCACert], Key: s.Data[keyCAKey]}
		if _, _, perr := parsePair(ca); perr != nil {
			return keyPair{}, fmt.Errorf("secret %s: %w (delete it to have a new CA made)", s.Name, perr)
		}
		return r.renewCAIfDue(ctx, pg, &s, ca)
	}
	if !apierrors.IsNotFound(err) {
		return keyPair{}, fmt.Errorf("read secret %s: %w", CASecretName(pg.Name), err)
	}
	ca, err := newCA(r.Rand, pg.Namespace+"/"+pg.Name, r.now(), r.caLifetime())
	if err != nil {
		return keyPair{}, err
	}
	sec := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: CASecretName(pg.Name), Namespace: pg.Namespace, Labels: withLabels(commonLabels(pg), "homeostat.dev/secret", "ca")},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{keyCACert: ca.Cert, keyCAKey: ca.Key},
	}
	if err := r.Create(ctx, sec); err != nil {
		return keyPair{}, fmt.Errorf("create secret %s: %w", sec.Name, err)
	}
	r.event(pg, "SecretCreated", "created certificate authority %s", sec.Name)
	return ca, nil
}

// renewCAIfDue renews the CA's certificate in its Secret when caRenewal
// says so; the server certificate is then issued again with it.
func (r *PostgresReconciler) renewCAIfDue(ctx context.Context, pg *v1alpha1.Postgres, s *corev1.Secret, ca keyPair) (keyPair, error) {
	reason := caRenewal(ca, r.now())
	if reason == "" {
		return ca, nil
	}
	renewed, err := renewCA(r.Rand, ca, pg.Namespace+"/"+pg.Name, r.now(), r.caLifetime())
	if err != nil {
		return keyPair{}, err
	}
	s.Data[keyCACert] = renewed.Cert
	if err := r.Update(ctx, s); err != nil {
		return keyPair{}, fmt.Errorf("renew the CA in secret %s: %w", s.Name, err)
	}
	r.event(pg, "CertificateAuthorityRenewed", "CA %s renewed with the same key (serial %s): %s", s.Name, certSerial(renewed.Cert), reason)
	return renewed, nil
}

// serverSecret is the kubernetes.io/tls Secret instances mount.
func serverSecret(pg *v1alpha1.Postgres, pair keyPair, caCert []byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: ServerSecretName(pg.Name), Namespace: pg.Namespace, Labels: withLabels(commonLabels(pg), "homeostat.dev/secret", "server")},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{keyTLSCert: pair.Cert, keyTLSKey: pair.Key, keyCACert: caCert},
	}
}

func (r *PostgresReconciler) serverCertLifetime() time.Duration {
	if r.ServerCertLifetime > 0 {
		return r.ServerCertLifetime
	}
	return DefaultServerCertLifetime
}

func (r *PostgresReconciler) caLifetime() time.Duration {
	if r.CALifetime > 0 {
		return r.CALifetime
	}
	return DefaultCALifetime
}

func tlsIssuer(pg *v1alpha1.Postgres) *v1alpha1.IssuerRef {
	if pg.Spec.TLS == nil {
		return nil
	}
	return pg.Spec.TLS.Issuer
}

// ensureAppSecretTLS keeps every credential Secret's verify-full keys in
// step: ca.crt is the cluster's CA, and a Secret made before TLS existed
// gets the URIs with sslmode=verify-full. Passwords are never changed here.
func (r *PostgresReconciler) ensureAppSecretTLS(ctx context.Context, pg *v1alpha1.Postgres, ca []byte) error {
	for _, kind := range secretKinds {
		var s corev1.Secret
		err := r.Get(ctx, client.ObjectKey{Namespace: pg.Namespace, Name: SecretName(pg.Name, kind)}, &s)
		if apierrors.IsNotFound(err) {
			continue // just created, not in the cache yet: the next reconcile
		}
		if err != nil {
			return fmt.Errorf("read secret %s: %w", SecretName(pg.Name, kind), err)
		}
		want := credentialData(pg, Credentials{Username: string(s.Data["username"]), Password: string(s.Data["password"]), Database: string(s.Data["dbname"])})
		// The URIs are rewritten only for a Secret without the TLS keys
		// (made before TLS): a password changed by hand, with or without
		// its uri, is the user's to keep in step, as before.
		if samePEM(s.Data[keyCACert], ca) && string(s.Data["sslmode"]) == want["sslmode"] && string(s.Data["sslrootcert"]) == want["sslrootcert"] {
			continue
		}
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		s.Data[keyCACert] = ca
		for _, k := range []string{"sslmode", "sslrootcert", "uri", "jdbc-uri"} {
			s.Data[k] = []byte(want[k])
		}
		if err := r.Update(ctx, &s); err != nil {
			return fmt.Errorf("update secret %s with the cluster CA: %w", s.Name, err)
		}
	}
	return nil
}

// tlsMount is where instance pods and Jobs see the server Secret.
const tlsMount = "/etc/homeostat/tls"

// serverSecretVolume mounts the server Secret, the given keys only when
// any are named (a backup Job needs only the CA).
func serverSecretVolume(pg *v1alpha1.Postgres, keys ...string) corev1.Volume {
	src := &corev1.SecretVolumeSource{SecretName: ServerSecretName(pg.Name), DefaultMode: ptr.To[int32](0o440)}
	for _, k := range keys {
		src.Items = append(src.Items, corev1.KeyToPath{Key: k, Path: k})
	}
	return corev1.Volume{Name: tlsVolume, VolumeSource: corev1.VolumeSource{Secret: src}}
}

// verifyPrimary makes libpq programs in a Job's container (pg_basebackup,
// and the backup tool's own connection) verify the primary's certificate
// against the cluster CA: PGSSLMODE=verify-full with PGSSLROOTCERT, the
// mounted ca.crt (the Job gets no private key).
func verifyPrimary(pg *v1alpha1.Postgres, spec *corev1.PodSpec) {
	spec.Volumes = append(spec.Volumes, serverSecretVolume(pg, keyCACert))
	c := &spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: tlsVolume, MountPath: tlsMount, ReadOnly: true})
	c.Env = append(c.Env, corev1.EnvVar{Name: "PGSSLMODE", Value: "verify-full"}, corev1.EnvVar{Name: "PGSSLROOTCERT", Value: tlsMount + "/" + keyCACert})
}

// optionsFor are the operator's Options for this cluster's join Jobs:
// plainPrimary while its primary's pod serves no TLS yet (a cluster made
// before TLS existed, whose primary is replaced last in a rollout). Pods
// never depend on it (their spec stays the same through the transition): a
// replica's instance manager moves its own streaming to verify-full once
// the primary serves a certificate of the cluster's CA.
func (r *PostgresReconciler) optionsFor(c *cluster) Options {
	o := r.Options
	if p := c.pods[c.pg.Status.Primary]; p != nil && !podHasTLS(p) {
		o.plainPrimary = true
	}
	return o
}

// upstreamArgs let a joining replica reach a primary that serves no TLS.
func upstreamArgs(o Options) []string {
	if o.plainPrimary {
		return []string{"--upstream-sslmode", "prefer"}
	}
	return nil
}
