package testserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// Azurite's well-known development account and key (public, documented by
// Microsoft; not a secret).
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AzureServer is a running Azurite blob service.
type AzureServer struct {
	// Endpoint is the blob service URL, account included:
	// http://127.0.0.1:PORT/devstoreaccount1.
	Endpoint string
	// Account and Key are the shared-key credentials of the account.
	Account string
	Key     string
	// Process is the running Azurite.
	Process *Process

	containers atomic.Int64
}

// AzuriteBin returns the path of azurite-blob, installed by
// scripts/install-test-servers under Dir()/azurite. It fails the test when
// it is missing.
func AzuriteBin(t testing.TB) string {
	t.Helper()
	p := filepath.Join(Dir(), "azurite", "node_modules", ".bin", "azurite-blob")
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		t.Fatalf("test server azurite-blob is not installed at %s; run scripts/install-test-servers (make test does); it needs Node.js", p)
	}
	return p
}

// Azurite starts Azurite's blob service on a free port of 127.0.0.1 with its
// data in a temporary directory. It is stopped when the test ends.
func Azurite(t testing.TB) *AzureServer {
	t.Helper()
	bin := AzuriteBin(t)
	port := FreePort(t)
	p := Start(t, Config{
		Name: "azurite",
		Path: bin,
		Args: []string{
			"--blobHost", "127.0.0.1",
			"--blobPort", strconv.Itoa(port),
			"--location", t.TempDir(),
			// Without this, Azurite reports telemetry over the internet.
			"--disableTelemetry",
			// The SDK speaks a newer API version than Azurite knows.
			"--skipApiVersionCheck",
			"--loose",
		},
		Ready: TCPReady(Addr(port)),
	})
	return &AzureServer{
		Endpoint: "http://" + Addr(port) + "/" + AzuriteAccount,
		Account:  AzuriteAccount,
		Key:      AzuriteKey,
		Process:  p,
	}
}

// Client returns an SDK client of the whole account, authenticated with the
// account key.
func (s *AzureServer) Client(t testing.TB) *azblob.Client {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(s.Account, s.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(s.Endpoint+"/", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewContainer creates an empty container with a unique name and returns
// the name.
func (s *AzureServer) NewContainer(t testing.TB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "test-" + strconv.FormatInt(s.containers.Add(1), 10) + "-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client(t).CreateContainer(ctx, name, nil); err != nil {
		t.Fatalf("create container %s in Azurite: %v\nAzurite output:\n%s", name, err, s.Process.Log())
	}
	return name
}
