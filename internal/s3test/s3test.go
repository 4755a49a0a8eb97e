// Package s3test starts a real S3 server for tests: the MinIO binary built by
// `make tools` (bin/minio), on a free 127.0.0.1 port with a temporary data
// directory. It can be stopped and started again on the same port and
// directory, to test what happens while the store is unreachable.
package s3test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"homeostat.dev/homeostat/backup"
	"homeostat.dev/homeostat/internal/testenv"
)

// Server is a running MinIO.
type Server struct {
	// Endpoint is host:port (plain HTTP).
	Endpoint string
	// Dir holds MinIO's data.
	Dir       string
	AccessKey string
	SecretKey string

	cmd    *exec.Cmd
	exited chan struct{} // closed when minio ended; err is then its Wait error
	err    error
	log    *os.File
}

// Start runs MinIO on a free loopback port with a fresh directory and waits
// until its health endpoint answers.
func Start() (*Server, error) {
	if _, err := testenv.Binary("minio"); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "homeostat-minio-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return start(dir, fmt.Sprintf("127.0.0.1:%d", port))
}

// StartOn runs MinIO on a given host:port (the demo's 127.0.0.1:9000, which
// examples/ names) with a fresh directory.
func StartOn(endpoint string) (*Server, error) {
	if _, err := testenv.Binary("minio"); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "homeostat-minio-")
	if err != nil {
		return nil, err
	}
	return start(dir, endpoint)
}

func start(dir, endpoint string) (*Server, error) {
	s := &Server{Endpoint: endpoint, Dir: dir, AccessKey: "homeostat-test", SecretKey: "homeostat-test-secret"}
	if err := s.Resume(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Resume starts MinIO again on the same port and directory after Pause.
func (s *Server) Resume() error {
	if s.cmd != nil {
		return fmt.Errorf("minio on %s is already running", s.Endpoint)
	}
	bin, err := testenv.Binary("minio")
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(s.Dir, "minio.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "server", "--quiet", "--address", s.Endpoint, "--console-address", "127.0.0.1:0", filepath.Join(s.Dir, "data"))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	s.cmd, s.log, s.exited = cmd, logFile, make(chan struct{})
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	return s.waitHealthy(60 * time.Second)
}

// waitHealthy waits for /minio/health/live and /minio/health/ready and then
// for a real S3 request to succeed: the health endpoints answer before the
// object layer is up, when requests still fail with "Server not initialized yet".
func (s *Server) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, path := range []string{"/minio/health/live", "/minio/health/ready"} {
		if err := s.waitFor(path, deadline); err != nil {
			return err
		}
	}
	client, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), MaxRetries: 1})
	if err != nil {
		return err
	}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := client.ListBuckets(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			_ = s.Pause()
			return fmt.Errorf("minio on %s does not answer S3 requests: %w", s.Endpoint, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *Server) waitFor(path string, deadline time.Time) error {
	url := "http://" + s.Endpoint + path
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			s.cmd = nil
			b, _ := os.ReadFile(filepath.Join(s.Dir, "minio.log"))
			return fmt.Errorf("minio on %s exited: %w: %s", s.Endpoint, s.err, b)
		default:
		}
		if resp, err := client.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = s.Pause()
	return fmt.Errorf("minio on %s: %s did not answer 200 in time", s.Endpoint, path)
}

// Pause stops MinIO but keeps its port and data for Resume.
func (s *Server) Pause() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
	return s.log.Close()
}

// Stop stops MinIO and removes its directory.
func (s *Server) Stop() error {
	err := s.Pause()
	if rerr := os.RemoveAll(s.Dir); err == nil {
		err = rerr
	}
	return err
}

// Config is a store configuration for this server.
func (s *Server) Config(bucket, prefix string) backup.Config {
	return backup.Config{Endpoint: s.Endpoint, Bucket: bucket, Prefix: prefix, Insecure: true, AccessKey: s.AccessKey, SecretKey: s.SecretKey}
}

// Env is the credentials as environment entries, for child processes.
func (s *Server) Env() []string {
	return []string{backup.EnvAccessKey + "=" + s.AccessKey, backup.EnvSecretKey + "=" + s.SecretKey}
}

// Open connects a store on bucket/prefix (created when missing).
func (s *Server) Open(ctx context.Context, bucket, prefix string) (*backup.S3, error) {
	return backup.Open(ctx, s.Config(bucket, prefix))
}
