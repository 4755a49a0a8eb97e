package postgres

import (
	"context"
	"fmt"
	"net"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// CertificateGVK is cert-manager's Certificate, used unstructured so the
// operator needs no cert-manager module and runs where it is not installed.
var CertificateGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}

// CertificateFor is the cert-manager Certificate that asks spec.tls.issuer
// for the server Secret: ECDSA P-256 with a new key on every renewal, the
// same names as the operator's own certificate, renewed by cert-manager a
// third of its lifetime before it expires.
func CertificateFor(pg *v1alpha1.Postgres, hosts []string, lifetime time.Duration) *unstructured.Unstructured {
	iss := tlsIssuer(pg)
	kind, group := iss.Kind, iss.Group
	if kind == "" {
		kind = "Issuer"
	}
	if group == "" {
		group = "cert-manager.io"
	}
	var dns, ips []any
	for _, h := range hosts {
		if net.ParseIP(h) != nil {
			ips = append(ips, h)
		} else {
			dns = append(dns, h)
		}
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{
			"name": ServerSecretName(pg.Name), "namespace": pg.Namespace,
			"labels": toAnyMap(withLabels(commonLabels(pg), "homeostat.dev/secret", "server")),
		},
		"spec": map[string]any{
			"secretName":  ServerSecretName(pg.Name),
			"commonName":  hosts[0],
			"dnsNames":    dns,
			"ipAddresses": ips,
			"duration":    lifetime.String(),
			"renewBefore": (lifetime / 3).String(),
			"usages":      []any{"server auth", "digital signature"},
			"privateKey":  map[string]any{"algorithm": "ECDSA", "size": int64(256), "rotationPolicy": "Always"},
			"secretTemplate": map[string]any{
				"labels": toAnyMap(withLabels(commonLabels(pg), "homeostat.dev/secret", "server")),
			},
			"issuerRef": map[string]any{"name": iss.Name, "kind": kind, "group": group},
		},
	}}
	u.SetGroupVersionKind(CertificateGVK)
	return u
}

func toAnyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ensureCertificate creates or updates the cluster's cert-manager
// Certificate (owned by the Postgres); cert-manager writes and renews the
// server Secret, and the instances reload it as they do the operator's own.
func (r *PostgresReconciler) ensureCertificate(ctx context.Context, pg *v1alpha1.Postgres, hosts []string) error {
	want := CertificateFor(pg, hosts, r.serverCertLifetime())
	if err := controllerutil.SetControllerReference(pg, want, r.Scheme); err != nil {
		return err
	}
	have := &unstructured.Unstructured{}
	have.SetGroupVersionKind(CertificateGVK)
	err := r.Get(ctx, client.ObjectKeyFromObject(want), have)
	if apierrors.IsNotFound(err) {
		if err := r.Create(ctx, want); err != nil {
			return fmt.Errorf("create cert-manager Certificate %s (is cert-manager installed?): %w", want.GetName(), err)
		}
		r.event(pg, "CertificateRequested", "asked %s %s for certificate %s", want.Object["spec"].(map[string]any)["issuerRef"].(map[string]any)["kind"], tlsIssuer(pg).Name, want.GetName())
		return nil
	}
	if err != nil {
		return fmt.Errorf("read cert-manager Certificate %s (is cert-manager installed?): %w", want.GetName(), err)
	}
	if specEqual(have.Object["spec"], want.Object["spec"]) {
		return nil
	}
	have.Object["spec"] = want.Object["spec"]
	if err := r.Update(ctx, have); err != nil {
		return fmt.Errorf("update cert-manager Certificate %s: %w", want.GetName(), err)
	}
	return nil
}

// dropCertificate deletes the cluster's cert-manager Certificate, if any
// (spec.tls.issuer was removed); a cluster without cert-manager installed
// has none.
func (r *PostgresReconciler) dropCertificate(ctx context.Context, pg *v1alpha1.Postgres) error {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(CertificateGVK)
	u.SetNamespace(pg.Namespace)
	u.SetName(ServerSecretName(pg.Name))
	err := r.Delete(ctx, u)
	if err == nil || apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		return nil
	}
	return fmt.Errorf("delete cert-manager Certificate %s: %w", u.GetName(), err)
}

// specEqual compares the fields the operator sets, as the API server
// returns them; fields others (a webhook) added are left alone.
func specEqual(have, want any) bool {
	h, _ := have.(map[string]any)
	for k, v := range want.(map[string]any) {
		if fmt.Sprint(h[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}
