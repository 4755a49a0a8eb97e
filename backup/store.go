package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ErrNotFound is returned (wrapped) for an object that does not exist, as
// opposed to a store that cannot be reached.
var ErrNotFound = errors.New("not found")

// Object is one stored object, its key relative to the store's prefix.
type Object struct {
	Key      string
	Size     int64
	Modified time.Time
	// Metadata holds the user metadata given to Put (keys lowercase).
	Metadata map[string]string
}

// Store is the little an object store must do for backups. Keys are relative
// to the store's prefix and use "/".
type Store interface {
	// Put stores r (size bytes, or -1 when unknown) under key.
	Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error
	// Get opens key for reading; ErrNotFound when it does not exist.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes key; ErrNotFound when it does not exist.
	Stat(ctx context.Context, key string) (Object, error)
	// List returns every object whose key starts with prefix, sorted by key.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes keys; missing keys are not an error.
	Delete(ctx context.Context, keys ...string) error
}

var _ Store = (*S3)(nil)

// S3 is a Store on an S3 bucket (path-style addressing, so MinIO works).
type S3 struct {
	cfg    Config
	client *minio.Client
	prefix string
}

// Open connects to the store and creates the bucket when it is missing.
func Open(ctx context.Context, cfg Config) (*S3, error) {
	if !cfg.Enabled() {
		return nil, fmt.Errorf("no backup store configured: --s3-endpoint and --s3-bucket (or %s, %s) are required", EnvEndpoint, EnvBucket)
	}
	if err := cfg.LoadCredentials(); err != nil {
		return nil, err
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       !cfg.Insecure,
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		Transport:    transport(),
		// Few retries: archive_command should fail in seconds when the store is
		// down (PostgreSQL retries it), not hang while WAL piles up.
		MaxRetries: 3,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", cfg, err)
	}
	s := &S3{cfg: cfg, client: client, prefix: strings.Trim(cfg.Prefix, "/")}
	exists, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, s.wrap("check bucket", "", err)
	}
	if !exists {
		if err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
			// Another process may have created it in the meantime.
			if ok, err2 := client.BucketExists(ctx, cfg.Bucket); err2 != nil || !ok {
				return nil, s.wrap("create bucket", "", err)
			}
		}
	}
	return s, nil
}

// transport fails fast on an unreachable endpoint, so that archive_command
// returns (non-zero) instead of hanging while WAL piles up.
func transport() http.RoundTripper {
	t, _ := minio.DefaultTransport(false)
	t.ResponseHeaderTimeout = 2 * time.Minute
	return t
}

// Config returns the store's configuration.
func (s *S3) Config() Config { return s.cfg }

func (s *S3) key(k string) string {
	if s.prefix == "" {
		return k
	}
	return path.Join(s.prefix, k)
}

// wrap names the operation, endpoint, bucket and key; never the credentials.
func (s *S3) wrap(op, key string, err error) error {
	if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
		err = fmt.Errorf("%w: %s", ErrNotFound, minio.ToErrorResponse(err).Message)
	}
	if key != "" {
		return fmt.Errorf("%s %s in %s: %w", op, key, s.cfg, err)
	}
	return fmt.Errorf("%s %s: %w", op, s.cfg, err)
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	opts := minio.PutObjectOptions{UserMetadata: meta, ContentType: "application/octet-stream"}
	if size >= 0 {
		// Parts are bounded in size: one PUT each, no multipart bookkeeping.
		opts.DisableMultipart = size <= 5<<30
	}
	if _, err := s.client.PutObject(ctx, s.cfg.Bucket, s.key(key), r, size, opts); err != nil {
		return s.wrap("put", key, err)
	}
	return nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	// Stat first: GetObject is lazy and would report a missing key only on Read.
	if _, err := s.Stat(ctx, key); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, s.key(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	return &objectReader{obj: obj, s: s, key: key}, nil
}

type objectReader struct {
	obj *minio.Object
	s   *S3
	key string
}

func (o *objectReader) Read(p []byte) (int, error) {
	n, err := o.obj.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = o.s.wrap("read", o.key, err)
	}
	return n, err
}

func (o *objectReader) Close() error { return o.obj.Close() }

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Object, error) {
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, s.key(key), minio.StatObjectOptions{})
	if err != nil {
		return Object{}, s.wrap("stat", key, err)
	}
	meta := map[string]string{}
	for k, v := range info.UserMetadata {
		meta[strings.ToLower(k)] = v
	}
	return Object{Key: key, Size: info.Size, Modified: info.LastModified, Metadata: meta}, nil
}

// List implements Store.
func (s *S3) List(ctx context.Context, prefix string) ([]Object, error) {
	full := s.key(prefix)
	if strings.HasSuffix(prefix, "/") && !strings.HasSuffix(full, "/") {
		full += "/"
	}
	var out []Object
	for info := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: full, Recursive: true}) {
		if info.Err != nil {
			return nil, s.wrap("list", prefix, info.Err)
		}
		key := info.Key
		if s.prefix != "" {
			key = strings.TrimPrefix(key, s.prefix+"/")
		}
		out = append(out, Object{Key: key, Size: info.Size, Modified: info.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.key(k), minio.RemoveObjectOptions{}); err != nil {
			if errors.Is(s.wrap("", "", err), ErrNotFound) {
				continue
			}
			return s.wrap("delete", k, err)
		}
	}
	return nil
}
