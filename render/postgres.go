package render

import (
	"regexp"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"homeostat.dev/homeostat/render/api/v1alpha1"
)

// defaultPostgres applies the Postgres CRD's defaults.
func defaultPostgres(pg *v1alpha1.Postgres) {
	s := &pg.Spec
	if s.Version == "" {
		s.Version = "16"
	}
	if s.Instances == 0 {
		s.Instances = 1
	}
	if s.Database == "" {
		s.Database = "app"
	}
	if s.Backup != nil && s.Backup.Keep == 0 {
		s.Backup.Keep = 7
	}
	if s.FailoverDelay == nil {
		s.FailoverDelay = &metav1.Duration{Duration: 30 * time.Second}
	}
	if s.DeletionPolicy == "" {
		s.DeletionPolicy = "Retain"
	}
	if s.PrimaryUpdateStrategy == "" {
		s.PrimaryUpdateStrategy = "unsupervised"
	}
	if s.TLS != nil && s.TLS.Issuer != nil {
		if s.TLS.Issuer.Kind == "" {
			s.TLS.Issuer.Kind = "Issuer"
		}
		if s.TLS.Issuer.Group == "" {
			s.TLS.Issuer.Group = "cert-manager.io"
		}
	}
}

var (
	pgVersion    = regexp.MustCompile(`^[0-9]+$`)
	pgIdentifier = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	walLSN       = regexp.MustCompile(`^[0-9A-Fa-f]+/[0-9A-Fa-f]+$`)
	// pgSetting is a GUC name, case-insensitive, optionally "extension.name".
	pgSetting = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)
)

// validatePostgres checks a Postgres after defaulting.
func validatePostgres(d *document, pg *v1alpha1.Postgres) []Problem {
	c := checker{d: d}
	s := &pg.Spec
	spec := field("spec")
	// Instances are named "<name>-<n>" and the app Secret "<name>-app": keep
	// room for the suffixes within a DNS-1035 label.
	c.objectName(pg.Name, validation.IsDNS1035Label)
	if len(pg.Name) > 50 {
		c.add(field("metadata", "name"), "%q is longer than 50 characters, leaving no room for instance names", pg.Name)
	}
	if !pgVersion.MatchString(s.Version) {
		c.add(spec.at("version"), "%q is not a PostgreSQL major version such as 16", s.Version)
	}
	if s.Image != "" {
		c.image(spec.at("image"), s.Image)
		if m := v1alpha1.ImageMajor(s.Image); m != "" && m != s.Version {
			c.add(spec.at("image"), "%q is PostgreSQL %s by its tag but spec.version is %q: the cluster's data directory needs binaries of its own major version (a minor version keeps the major: %s)",
				s.Image, m, s.Version, "postgres:"+s.Version+".x")
		}
	}
	c.between(spec.at("instances"), s.Instances, 1, 9)
	c.atLeast(spec.at("synchronous"), s.Synchronous, 0)
	if s.Synchronous > 0 && s.Synchronous >= s.Instances {
		c.add(spec.at("synchronous"), "%d synchronous replicas need at least %d instances, got %d", s.Synchronous, s.Synchronous+1, s.Instances)
	}
	c.storage(spec.at("storage", "size"), s.Storage.Size)
	if s.Storage.StorageClassName != nil {
		c.errs(spec.at("storage", "storageClassName"), *s.Storage.StorageClassName, validation.IsDNS1123Subdomain(*s.Storage.StorageClassName))
	}
	c.identifier(spec.at("database"), s.Database)
	if s.Owner != "" {
		c.identifier(spec.at("owner"), s.Owner)
	}
	for _, k := range sortedStrings(s.Parameters) {
		switch {
		case !pgSetting.MatchString(k):
			c.add(spec.at("parameters").at(k), "%q is not a PostgreSQL setting name", k)
		case v1alpha1.ReservedParameter(k):
			c.add(spec.at("parameters").at(k), "%s is set by homeostat (replication, archiving, recovery, access) and cannot be overridden", k)
		}
	}
	if r := s.Resources; r != nil {
		c.quantity(spec.at("resources", "cpu"), r.CPU)
		c.quantity(spec.at("resources", "memory"), r.Memory)
	}
	if b := s.Backup; b != nil {
		p := spec.at("backup")
		c.s3(p.at("s3"), &b.S3)
		c.cron(p.at("schedule"), b.Schedule)
		c.atLeast(p.at("keep"), b.Keep, 1)
	}
	if s.Bootstrap != nil && s.Bootstrap.FromBackup != nil {
		fb := s.Bootstrap.FromBackup
		p := spec.at("bootstrap", "fromBackup")
		c.s3(p.at("s3"), &fb.S3)
		if fb.TargetTime != nil && fb.TargetLSN != "" {
			c.add(p, "set at most one of targetTime and targetLSN")
		}
		if fb.TargetLSN != "" && !walLSN.MatchString(fb.TargetLSN) {
			c.add(p.at("targetLSN"), "%q is not a WAL location such as 0/3000060", fb.TargetLSN)
		}
	}
	if s.FailoverDelay != nil && s.FailoverDelay.Duration <= 0 {
		c.add(spec.at("failoverDelay"), "must be positive, got %s", s.FailoverDelay.Duration)
	}
	switch s.DeletionPolicy {
	case "Retain", "Delete":
	default:
		c.add(spec.at("deletionPolicy"), "%q must be Retain or Delete", s.DeletionPolicy)
	}
	return c.problems
}

func (c *checker) identifier(p fieldPath, v string) {
	if !pgIdentifier.MatchString(v) || len(v) > 63 {
		c.add(p, "%q is not a PostgreSQL identifier (lowercase letters, digits and _, at most 63)", v)
	}
}

// s3Endpoint is what the backup store's client accepts: host[:port], no
// scheme and no path (plain HTTP is insecure: true).
var s3Endpoint = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)

func (c *checker) s3(p fieldPath, s *v1alpha1.S3Store) {
	if c.required(p.at("endpoint"), s.Endpoint) && !s3Endpoint.MatchString(s.Endpoint) {
		c.add(p.at("endpoint"), "%q must be host[:port] without a scheme or path, as s3.amazonaws.com or 127.0.0.1:9000 (insecure: true selects plain HTTP)", s.Endpoint)
	}
	if c.required(p.at("bucket"), s.Bucket) && len(validation.IsDNS1123Subdomain(s.Bucket)) > 0 {
		c.add(p.at("bucket"), "%q is not a bucket name (lowercase letters, digits, dots and dashes)", s.Bucket)
	}
	if c.required(p.at("secretRef", "name"), s.SecretRef.Name) {
		c.errs(p.at("secretRef", "name"), s.SecretRef.Name, validation.IsDNS1123Subdomain(s.SecretRef.Name))
	}
}
