package s3

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

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

// TestConformanceObjectsMinIO: any object under the replica's prefix reads
// back through storage.Objects; objects are put with the raw SDK, as
// another tool would.
func TestConformanceObjectsMinIO(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	api := srv.SDK(t)
	var n atomic.Int64
	storagetest.RunObjects(t, func(t *testing.T) (storage.Client, storagetest.Put) {
		prefix := fmt.Sprintf("objects/%d/db", n.Add(1))
		return openSpec(t, spec(srv, bucket, prefix, nil)), func(name string, data []byte) error {
			_, err := api.PutObject(context.Background(), &awss3.PutObjectInput{
				Bucket: aws.String(bucket),
				Key:    aws.String(prefix + "/" + name),
				Body:   bytes.NewReader(data),
			})
			return err
		}
	})
}
