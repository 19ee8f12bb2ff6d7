package s3

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
)

func TestConformanceMinIO(t *testing.T) {
	conformance(t, testserver.MinIO(t))
}

func TestConformanceVersityGW(t *testing.T) {
	conformance(t, testserver.VersityGW(t))
}

// conformance runs the suite with a fresh prefix per subtest, a 5 MiB part
// size (the suite's ~12 MB file is a multipart upload), and a process-wide
// transfer limit smaller than a multipart upload's budget.
func conformance(t *testing.T, srv *testserver.S3Server) {
	bucket := srv.Bucket(t)
	transfers := storage.NewTransfers(8, 16<<20)
	var n atomic.Int64
	storagetest.Run(t, func(t *testing.T) storage.Client {
		s := spec(srv, bucket, fmt.Sprintf("conformance/%d/db", n.Add(1)), nil)
		s.Transfers = transfers
		return openSpec(t, s)
	})
}
