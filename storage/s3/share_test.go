package s3

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// The S3 replicas of a process share the SDK configuration and one HTTP
// client per TLS setting, which honours AWS_CA_BUNDLE, and what one replica
// sets does not leak into another's configuration.
func TestSharedSDKConfig(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	writeCA(t, ca)
	t.Setenv("AWS_CA_BUNDLE", ca)

	ctx := context.Background()
	config := func(skip bool) aws.Config {
		cfg, err := sdkConfig(ctx, skip)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	a, b, insecure := config(false), config(false), config(true)
	if a.HTTPClient != b.HTTPClient {
		t.Error("two replicas got different HTTP clients")
	}
	if insecure.HTTPClient == a.HTTPClient {
		t.Error("a replica that skips verification shares the client of one that verifies")
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	want := x509.NewCertPool()
	want.AppendCertsFromPEM(pem)
	tc := a.HTTPClient.(*awshttp.BuildableClient).GetTransport().TLSClientConfig
	if tc == nil || tc.RootCAs == nil || !tc.RootCAs.Equal(want) || tc.InsecureSkipVerify {
		t.Errorf("the shared client does not trust exactly AWS_CA_BUNDLE's certificates: %+v", tc)
	}
	if tc := insecure.HTTPClient.(*awshttp.BuildableClient).GetTransport().TLSClientConfig; tc == nil || !tc.InsecureSkipVerify {
		t.Error("skip-verify is not set on the insecure client")
	}
	a.Region = "eu-west-3"
	if c := config(false); c.Region == "eu-west-3" {
		t.Error("a replica's region leaked into the shared configuration")
	}
}

// writeCA writes a new self-signed CA certificate to path, in PEM.
func writeCA(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "test CA " + serial.String()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}
