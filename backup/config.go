package backup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Environment variables that configure the store when the flags are not given.
const (
	EnvEndpoint       = "HOMEOSTAT_S3_ENDPOINT"
	EnvBucket         = "HOMEOSTAT_S3_BUCKET"
	EnvPrefix         = "HOMEOSTAT_S3_PREFIX"
	EnvRegion         = "HOMEOSTAT_S3_REGION"
	EnvInsecure       = "HOMEOSTAT_S3_INSECURE"
	EnvCredentialsDir = "HOMEOSTAT_S3_CREDENTIALS_DIR"
	EnvAccessKey      = "AWS_ACCESS_KEY_ID"
	EnvSecretKey      = "AWS_SECRET_ACCESS_KEY"
)

// Config says where the store is. The credentials are never printed: String
// and Args leave them out, so archive_command and logs carry no secret.
type Config struct {
	// Endpoint is host:port of the S3 service, without scheme.
	Endpoint string
	Bucket   string
	// Prefix is the folder inside the bucket for one cluster.
	Prefix string
	Region string
	// Insecure talks plain HTTP instead of TLS.
	Insecure bool
	// CredentialsDir holds files AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
	// (a mounted Kubernetes Secret); it is passed on to archive_command.
	CredentialsDir string

	AccessKey string
	SecretKey string
}

// Enabled reports whether a store was configured at all.
func (c Config) Enabled() bool { return c.Endpoint != "" && c.Bucket != "" }

// String names the store for errors and logs, without credentials.
func (c Config) String() string {
	scheme := "https"
	if c.Insecure {
		scheme = "http"
	}
	s := fmt.Sprintf("%s://%s/%s", scheme, c.Endpoint, c.Bucket)
	if c.Prefix != "" {
		s += "/" + strings.Trim(c.Prefix, "/")
	}
	return s
}

// Args are the command-line flags that reproduce this configuration in a
// child `homeostat backup ...` (archive_command, restore_command). Every
// setting is given, empty ones too, so that HOMEOSTAT_S3_* variables in the
// child's environment (a restored cluster's own store) cannot change which
// store it reads. Credentials are not among them: the child reads the same
// environment or CredentialsDir.
func (c Config) Args() []string {
	args := []string{"--s3-endpoint", c.Endpoint, "--s3-bucket", c.Bucket, "--s3-prefix", c.Prefix,
		"--s3-region", c.Region, "--s3-insecure=" + strconv.FormatBool(c.Insecure)}
	if c.CredentialsDir != "" {
		args = append(args, "--s3-credentials-dir", c.CredentialsDir)
	}
	return args
}

// LoadCredentials fills AccessKey and SecretKey when they are empty: from
// CredentialsDir, else from $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY, else
// from the files named by $AWS_ACCESS_KEY_ID_FILE / $AWS_SECRET_ACCESS_KEY_FILE.
func (c *Config) LoadCredentials() error {
	load := func(dst *string, name string) error {
		if *dst != "" {
			return nil
		}
		if c.CredentialsDir != "" {
			p := filepath.Join(c.CredentialsDir, name)
			b, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("read s3 credential %s: %w", p, err)
			}
			*dst = strings.TrimSpace(string(b))
			return nil
		}
		if v := os.Getenv(name); v != "" {
			*dst = v
			return nil
		}
		if f := os.Getenv(name + "_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("read s3 credential %s (from %s_FILE): %w", f, name, err)
			}
			*dst = strings.TrimSpace(string(b))
		}
		return nil
	}
	if err := load(&c.AccessKey, EnvAccessKey); err != nil {
		return err
	}
	return load(&c.SecretKey, EnvSecretKey)
}
