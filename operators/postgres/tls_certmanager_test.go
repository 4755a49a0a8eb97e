package postgres

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// installCertificateCRD installs cert-manager's Certificate kind (group,
// version, names and scope as cert-manager's; its schema kept open, since
// no cert-manager webhook or controller runs here) and waits until the API
// server serves it.
func installCertificateCRD(t *testing.T) {
	t.Helper()
	open := true
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "certificates.cert-manager.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "cert-manager.io",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "certificates", Singular: "certificate", Kind: "Certificate",
				ListKind: "CertificateList", ShortNames: []string{"cert", "certs"}},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: &open}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}}}},
		},
	}
	ctx := context.Background()
	if err := env.Client.Create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(CertificateGVK.GroupVersion().WithKind("CertificateList"))
		err := env.Client.List(ctx, l)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Certificate CRD not served: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// With spec.tls.issuer the operator asks cert-manager for the server
// certificate instead of making a CA, waits for the Secret (nothing is
// bootstrapped without it), then bootstraps with the issuer's CA in the
// credential Secrets. The Secret is written here as cert-manager would;
// no real cert-manager runs.
func TestIssuerGetsACertManagerCertificateAndItsSecretIsUsed(t *testing.T) {
	installCertificateCRD(t)
	ns := newNamespace(t)
	pg := createPostgres(t, ns, func(pg *v1alpha1.Postgres) {
		pg.Spec.TLS = &v1alpha1.PostgresTLS{Issuer: &v1alpha1.IssuerRef{Name: "corp-ca", Kind: "ClusterIssuer"}}
	})
	r := newReconciler()
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	cert := &unstructured.Unstructured{}
	cert.SetGroupVersionKind(CertificateGVK)
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "db-server"}, cert); err != nil {
		t.Fatalf("no Certificate: %v", err)
	}
	spec := cert.Object["spec"].(map[string]any)
	dns, _, _ := unstructured.NestedStringSlice(spec, "dnsNames")
	ips, _, _ := unstructured.NestedStringSlice(spec, "ipAddresses")
	issuer, _, _ := unstructured.NestedStringMap(spec, "issuerRef")
	algo, _, _ := unstructured.NestedString(spec, "privateKey", "algorithm")
	if spec["secretName"] != "db-server" || !slices.Contains(dns, "db-rw."+ns+".svc") || !slices.Contains(dns, "db-ro") ||
		!slices.Contains(ips, "127.0.0.1") || algo != "ECDSA" ||
		issuer["name"] != "corp-ca" || issuer["kind"] != "ClusterIssuer" || issuer["group"] != "cert-manager.io" {
		t.Fatalf("Certificate spec = %v", spec)
	}
	if len(cert.GetOwnerReferences()) != 1 || cert.GetOwnerReferences()[0].Name != "db" {
		t.Errorf("Certificate owners = %v, want the Postgres", cert.GetOwnerReferences())
	}
	got := get(t, &v1alpha1.Postgres{}, ns, "db")
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReconciling); got.Status.Phase != PhaseBootstrapping ||
		c == nil || !strings.Contains(c.Message, "cert-manager") {
		t.Errorf("status %q %+v, want waiting for cert-manager", got.Status.Phase, c)
	}
	for _, name := range []string{"db-1", CASecretName("db")} {
		var obj client.Object = &corev1.PersistentVolumeClaim{}
		if name == CASecretName("db") {
			obj = &corev1.Secret{}
		}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); !apierrors.IsNotFound(err) {
			t.Errorf("%T %s exists before the certificate: %v", obj, name, err)
		}
	}

	// cert-manager's CA issuer writes the Secret.
	ca, err := newCA(nil, "corp", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := newServerCert(nil, ca, append(dns, ips...), time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(context.Background(), serverSecret(pg, pair, ca.Cert)); err != nil {
		t.Fatal(err)
	}
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	get(t, &corev1.PersistentVolumeClaim{}, ns, "db-1")
	for _, kind := range secretKinds {
		if s := get(t, &corev1.Secret{}, ns, SecretName("db", kind)); !samePEM(s.Data[keyCACert], ca.Cert) {
			t.Errorf("%s has not the issuer's CA", s.Name)
		}
	}
	// The operator never replaces what cert-manager wrote.
	if s := get(t, &corev1.Secret{}, ns, "db-server"); !samePEM(s.Data[keyTLSCert], pair.Cert) {
		t.Error("the operator overwrote cert-manager's certificate")
	}

	// Without the issuer the cluster's own CA signs again, and the
	// Certificate goes, so cert-manager does not write the Secret back.
	cur := get(t, &v1alpha1.Postgres{}, ns, "db")
	cur.Spec.TLS = nil
	if err := env.Client.Update(context.Background(), cur); err != nil {
		t.Fatal(err)
	}
	if _, err := reconcileOnce(t, r, pg); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "db-server"}, cert); !apierrors.IsNotFound(err) {
		t.Errorf("the Certificate is still there without spec.tls.issuer: %v", err)
	}
	own := get(t, &corev1.Secret{}, ns, CASecretName("db"))
	server := get(t, &corev1.Secret{}, ns, "db-server")
	if !samePEM(server.Data[keyCACert], own.Data[keyCACert]) || renewal(server.Data[keyTLSCert], own.Data[keyCACert], ServerHosts(cur, []string{"db-1"}), time.Now()) != "" {
		t.Error("the server certificate is not the cluster CA's after the issuer was removed")
	}
	if s := get(t, &corev1.Secret{}, ns, SecretName("db", SecretApp)); !samePEM(s.Data[keyCACert], own.Data[keyCACert]) {
		t.Error("the app Secret still carries the issuer's CA")
	}
}
