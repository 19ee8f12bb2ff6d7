package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/walship/walship/internal/testserver"
)

// minio is a MinIO server on 127.0.0.1 (installed by
// scripts/install-test-servers) with one bucket, for the proxy kind.
type minio struct {
	*testserver.SuiteMinIO
	p *proc
}

// startMinIO starts the suite's MinIO once, with its data under the
// scratch directory.
func (s *suite) startMinIO() error {
	if s.minio != nil {
		return nil
	}
	srv, cmd, err := testserver.PrepareMinIO(filepath.Join(s.work, "minio"), "torture")
	if err != nil {
		return err
	}
	m := &minio{SuiteMinIO: srv}
	if m.p, err = s.startProc(procSpec{name: "minio", bin: cmd.Path, args: cmd.Args, env: cmd.Env, dir: cmd.Dir}); err != nil {
		return err
	}
	if err := m.Ready(s.ctx, m.p.done); err != nil {
		m.stop()
		return fmt.Errorf("%w%s", err, m.p.logTail())
	}
	s.minio = m
	return nil
}

func (m *minio) stop() { m.p.kill() }

// target is the replica at prefix of the bucket, reached at endpoint
// (MinIO's own, or a fault proxy's in front of it).
func (m *minio) target(prefix, endpoint string) replicaTarget {
	return replicaTarget{
		url: m.url(prefix, endpoint),
		yaml: []string{
			fmt.Sprintf("url: s3://%s/%s", m.Bucket, prefix),
			"endpoint: " + endpoint,
		},
		env: []string{"WALSHIP_ACCESS_KEY_ID=" + m.AccessKey, "WALSHIP_SECRET_ACCESS_KEY=" + m.SecretKey},
	}
}

// url is the replica URL of prefix at endpoint.
func (m *minio) url(prefix, endpoint string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s", m.Bucket, prefix, url.QueryEscape(endpoint))
}

// removePrefix deletes every object under prefix.
func (m *minio) removePrefix(ctx context.Context, prefix string) error {
	c := m.SDK()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(m.Bucket), Prefix: aws.String(prefix + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		if len(page.Contents) == 0 {
			continue
		}
		var ids []types.ObjectIdentifier
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(m.Bucket), Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			return err
		}
	}
	return nil
}
