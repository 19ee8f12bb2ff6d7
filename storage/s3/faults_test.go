package s3

import (
	"fmt"
	"testing"

	"github.com/walship/walship/internal/e2e"
	"github.com/walship/walship/internal/testserver"
)

// TestE2EFaults replicates through the walship binary to MinIO behind a proxy
// that fails a fifth of all requests: 503 SlowDown, 500, connections reset
// before the request or halfway through the answer, and delays. walship is
// killed and restarted as in every end-to-end test, each time once it
// replicates (the replica holds a commit it shipped through the faults:
// opening alone takes seconds here); the replica must still hold one
// unbroken chain, and restores, also made through the proxy, must be exact.
func TestE2EFaults(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	proxy := testserver.NewFaultProxy(t, srv.Endpoint, 0.2)
	e2e.Run(t, e2e.Replica{
		YAML: fmt.Sprintf("url: s3://%s/app\nendpoint: %s", bucket, proxy.URL),
		Env: []string{
			"WALSHIP_ACCESS_KEY_ID=" + srv.AccessKey,
			"WALSHIP_SECRET_ACCESS_KEY=" + srv.SecretKey,
		},
		// The checks read MinIO directly.
		Client: openSpec(t, spec(srv, bucket, "app", nil)),
	})
	t.Log(proxy.Summary())
	for f := testserver.Fault(0); f < testserver.NumFaults; f++ {
		if proxy.Count(f) == 0 {
			t.Errorf("no request got %s: the test did not exercise it", f)
		}
	}
}
