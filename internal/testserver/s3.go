package testserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MinIOKMSKeyID names the static KMS key every MinIO started here has, so
// SSE-KMS can be tested (MinIO's single-key KMS, MINIO_KMS_SECRET_KEY).
const MinIOKMSKeyID = "walship-test-key"

// S3Server is a running S3-compatible server.
type S3Server struct {
	// Name is "minio" or "versitygw".
	Name string
	// Endpoint is the server's URL: http://127.0.0.1:PORT, or https:// for
	// a server started with TLS.
	Endpoint string
	// AccessKey and SecretKey are the root user's credentials.
	AccessKey string
	SecretKey string
	// Region is the region the server answers for.
	Region string
	// CAFile, for a server started with TLS, is the PEM file of the
	// certificate that signed the server's (for AWS_CA_BUNDLE); else "".
	CAFile string
	// Process is the running server.
	Process *Process

	buckets atomic.Int64
}

// MinIO starts MinIO on a free port of 127.0.0.1 with its data in a
// temporary directory, over plain HTTP. It is stopped when the test ends.
func MinIO(t testing.TB) *S3Server {
	t.Helper()
	return startMinIO(t, false)
}

// MinIOTLS is MinIO serving HTTPS with a certificate for 127.0.0.1 signed by
// a throwaway CA, whose PEM file is S3Server.CAFile. MinIO accepts SSE-C
// only over TLS.
func MinIOTLS(t testing.TB) *S3Server {
	t.Helper()
	return startMinIO(t, true)
}

func startMinIO(t testing.TB, useTLS bool) *S3Server {
	t.Helper()
	bin := Bin(t, "minio")
	port, consolePort := FreePort(t), FreePort(t)
	s := &S3Server{
		Name:      "minio",
		Endpoint:  "http://" + Addr(port),
		AccessKey: "walship-test-" + s3RandomHex(4),
		SecretKey: "secret-" + s3RandomHex(16),
		Region:    "us-east-1",
	}
	var flags []string
	readyClient := &http.Client{Timeout: 2 * time.Second}
	if useTLS {
		certsDir := t.TempDir()
		s.CAFile = s3WriteTLSFiles(t, certsDir, "public.crt", "private.key")
		flags = []string{"--certs-dir", certsDir}
		s.Endpoint = "https://" + Addr(port)
		readyClient.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s3CertPool(t, s.CAFile)}}
	}

	var kmsKey [32]byte
	_, _ = rand.Read(kmsKey[:])
	s.Process = Start(t, Config{
		Name: "minio",
		Path: bin,
		Args: minioArgs(port, consolePort, t.TempDir(), flags...),
		// Keep MinIO's own state under the test's temporary directories.
		Env: append(minioEnv(s.AccessKey, s.SecretKey, t.TempDir(), t.TempDir()),
			"MINIO_REGION="+s.Region,
			"MINIO_KMS_SECRET_KEY="+MinIOKMSKeyID+":"+base64.StdEncoding.EncodeToString(kmsKey[:]),
		),
		Ready: func() error { return minioLive(readyClient, s.Endpoint) },
	})
	return s
}

// VersityGW starts the Versity S3 gateway with its POSIX backend on a free
// port of 127.0.0.1, storing buckets as directories of a temporary
// directory (object metadata in extended attributes). It is stopped when the
// test ends.
func VersityGW(t testing.TB) *S3Server {
	t.Helper()
	bin := Bin(t, "versitygw")
	port := FreePort(t)
	s := &S3Server{
		Name:      "versitygw",
		Endpoint:  "http://" + Addr(port),
		AccessKey: "walship-test-" + s3RandomHex(4),
		SecretKey: "secret-" + s3RandomHex(16),
		Region:    "us-east-1",
	}
	s.Process = Start(t, Config{
		Name: "versitygw",
		Path: bin,
		Args: []string{
			"--port", Addr(port),
			"--region", s.Region,
			"--quiet",
			"posix", t.TempDir(),
		},
		Env: []string{
			// Passed through the environment, not argv, so they stay out
			// of process listings.
			"ROOT_ACCESS_KEY=" + s.AccessKey,
			"ROOT_SECRET_KEY=" + s.SecretKey,
		},
		Ready: TCPReady(Addr(port)),
	})
	return s
}

// SDK returns a raw S3 SDK client of the server with the root credentials,
// for tests that look at objects behind the backend's back.
func (s *S3Server) SDK(t testing.TB) *s3.Client {
	t.Helper()
	opts := s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if s.CAFile != "" {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s3CertPool(t, s.CAFile)}}}
	}
	return s3.New(opts)
}

// Bucket creates an empty bucket with a unique name and returns the name.
func (s *S3Server) Bucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test-%d-%s", s.buckets.Add(1), s3RandomHex(4))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.SDK(t).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s in %s: %v\n%s output:\n%s", name, s.Name, err, s.Name, s.Process.Log())
	}
	return name
}

func s3RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// s3WriteTLSFiles writes a self-signed certificate for 127.0.0.1 and its key
// into dir under the given names, and returns the certificate's path (the
// certificate is its own CA).
func s3WriteTLSFiles(t testing.TB, dir, certName, keyName string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "walship test server"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(dir, certName)
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyName), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath
}

func s3CertPool(t testing.TB, caFile string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s", caFile)
	}
	return pool
}
