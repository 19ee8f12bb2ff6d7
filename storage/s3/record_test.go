package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walship/walship/internal/testserver"
	"github.com/walship/walship/storage"
)

// conditional reports whether a request is a conditional PUT.
func conditional(r *http.Request) bool {
	return r.Method == http.MethodPut && (r.Header.Get("If-None-Match") != "" || r.Header.Get("If-Match") != "")
}

// TestRecordsNeedConditionalWrites puts MinIO behind a transport that
// answers conditional PUTs as a store without conditional writes would:
// with 501 Not Implemented, or by writing regardless. Record writes must
// fail, say why, and leave nothing behind; once the store honours them
// again, the check passes and is not repeated.
func TestRecordsNeedConditionalWrites(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	var mode atomic.Value // "501", "ignored" or "pass"
	var puts atomic.Int64 // conditional PUTs that reached MinIO
	s := spec(srv, bucket, "db", nil)
	c, err := open(context.Background(), s, hooks{transport: func(base http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if !conditional(r) {
				return base.RoundTrip(r)
			}
			resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}
			switch mode.Load() {
			case "501":
				resp.StatusCode = http.StatusNotImplemented
				resp.Header.Set("Content-Type", "application/xml")
				resp.Body = io.NopCloser(strings.NewReader(`<?xml version="1.0" encoding="UTF-8"?>` +
					`<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>`))
			case "ignored":
				resp.Header.Set("ETag", `"ignored"`)
			default:
				puts.Add(1)
				return base.RoundTrip(r)
			}
			return resp, nil
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	api := srv.SDK(t)

	for _, m := range []string{"501", "ignored"} {
		mode.Store(m)
		_, err := c.WriteRecord(ctx, "owner.json", []byte(`{}`), "")
		if !errors.Is(err, errConditionalWritesUnsupported) {
			t.Fatalf("%s: write a record: %v; want the error of a store without conditional writes", m, err)
		}
		msg := err.Error()
		for _, want := range []string{"replica s3://" + bucket + "/db: write record owner.json: ", "If-None-Match", "one writer per replica", "upgrade the store"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: the error does not say %q: %s", m, want, msg)
			}
		}
		if strings.Contains(msg, srv.SecretKey) || strings.Contains(msg, srv.AccessKey) {
			t.Errorf("%s: the error holds credentials: %s", m, msg)
		}
		if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{}`), `"abc"`); !errors.Is(err, errConditionalWritesUnsupported) {
			t.Fatalf("%s: replace a record: %v; want the error of a store without conditional writes", m, err)
		}
		if keys := rawKeys(t, api, bucket); len(keys) != 0 {
			t.Fatalf("%s: the refused writes left %q", m, keys)
		}
	}

	mode.Store("pass")
	v, err := c.WriteRecord(ctx, "owner.json", []byte(`{"a":1}`), "")
	if err != nil {
		t.Fatalf("once the store honours conditional writes: %v", err)
	}
	if n := puts.Load(); n != 4 {
		t.Fatalf("the first record write sent %d conditional PUTs; want the check's 3 and its own", n)
	}
	if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{"a":2}`), v); err != nil {
		t.Fatal(err)
	}
	if n := puts.Load(); n != 5 {
		t.Fatalf("the second record write sent %d conditional PUTs; want 1: the check is done once", n-4)
	}
	if keys := rawKeys(t, api, bucket); !slices.Equal(keys, []string{"db/owner.json"}) {
		t.Fatalf("the bucket holds %q; want only the record", keys)
	}
}

// TestRecordRetriedAfterSuccess loses the answer to a record create that
// MinIO carried out: the SDK sends it again, the store refuses it, and the
// write is reported as a conflict; reading the record shows the write.
func TestRecordRetriedAfterSuccess(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	var once sync.Once
	c, err := open(context.Background(), spec(srv, bucket, "db", nil), hooks{transport: func(base http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := base.RoundTrip(r)
			if err != nil || !conditional(r) || !strings.HasSuffix(r.URL.Path, "/owner.json") {
				return resp, err
			}
			lost := false
			once.Do(func() { lost = true })
			if !lost {
				return resp, nil
			}
			resp.Body.Close()
			return nil, fmt.Errorf("injected: %w", syscall.ECONNRESET)
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := []byte(`{"owner":"me"}`)
	if _, err := c.WriteRecord(ctx, "owner.json", data, ""); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a create retried after it succeeded: %v; want a conflict", err)
	}
	got, _, err := c.ReadRecord(ctx, "owner.json")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %q, %v; want %q", got, err, data)
	}
}

// TestRecordLimits checks that an object larger than a record is not read
// as one, and that a version that would match any ETag is refused.
func TestRecordLimits(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	c := openSpec(t, spec(srv, bucket, "db", nil))
	ctx := context.Background()
	big := bytes.Repeat([]byte("x"), storage.MaxRecordSize+1)
	if _, err := srv.SDK(t).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("db/big.json"), Body: bytes.NewReader(big)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadRecord(ctx, "big.json"); err == nil || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("read an object larger than a record: %v", err)
	}
	for _, v := range []string{"*", `"a", "b"`} {
		if _, err := c.WriteRecord(ctx, "big.json", []byte(`{}`), v); err == nil {
			t.Fatalf("a write at version %q succeeded", v)
		}
	}
	if _, err := c.WriteRecord(ctx, "big.json", []byte(`{}`), `"not-its-etag"`); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a replace at another ETag: %v; want a conflict", err)
	}
}

// TestRecordsWithoutConditionalWrites: with conditional-writes: false, a
// store that answers every conditional PUT with 501 still keeps records,
// written with plain PUTs after a read and compare: a create of an
// existing record and a replace at a stale version are refused, and no
// conditional request is sent.
func TestRecordsWithoutConditionalWrites(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	var condPuts atomic.Int64
	c, err := open(context.Background(), spec(srv, bucket, "db", map[string]string{"conditional-writes": "false"}), hooks{transport: func(base http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if conditional(r) {
				condPuts.Add(1)
				return &http.Response{StatusCode: http.StatusNotImplemented, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
			}
			return base.RoundTrip(r)
		})
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v1, err := c.WriteRecord(ctx, "owner.json", []byte(`{"a":1}`), "")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{"a":9}`), ""); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a create of an existing record: %v; want a conflict", err)
	}
	v2, err := c.WriteRecord(ctx, "owner.json", []byte(`{"a":2}`), v1)
	if err != nil || v2 == v1 {
		t.Fatalf("replace at the current version: %q, %v", v2, err)
	}
	if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{"a":3}`), v1); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a replace at a stale version: %v; want a conflict", err)
	}
	if data, v, err := c.ReadRecord(ctx, "owner.json"); err != nil || string(data) != `{"a":2}` || v != v2 {
		t.Fatalf("read back %q %q, %v", data, v, err)
	}
	if n := condPuts.Load(); n != 0 {
		t.Fatalf("%d conditional PUTs were sent with conditional-writes: false", n)
	}
}

// TestConditionalWritesCheckedOncePerBucket: the replicas of one bucket in
// a process check the store's conditional writes once between them.
func TestConditionalWritesCheckedOncePerBucket(t *testing.T) {
	srv := testserver.MinIO(t)
	bucket := srv.Bucket(t)
	var condPuts atomic.Int64
	counting := hooks{transport: func(base http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if conditional(r) {
				condPuts.Add(1)
			}
			return base.RoundTrip(r)
		})
	}}
	ctx := context.Background()
	for i, prefix := range []string{"a", "b"} {
		c, err := open(ctx, spec(srv, bucket, prefix, nil), counting)
		if err != nil {
			t.Fatal(err)
		}
		before := condPuts.Load()
		if _, err := c.WriteRecord(ctx, "owner.json", []byte(`{}`), ""); err != nil {
			t.Fatal(err)
		}
		want := []int64{4, 1}[i] // the check's three and the write, then the write alone
		if n := condPuts.Load() - before; n != want {
			t.Fatalf("replica %s: the first record write sent %d conditional PUTs; want %d", prefix, n, want)
		}
	}
}
