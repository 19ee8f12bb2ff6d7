package storage

import (
	"context"

	"github.com/superfly/ltx"
	"golang.org/x/sync/errgroup"
)

// DeleteEach is the shape of DeleteLTXFiles for backends that delete one file
// per request: it checks every file's level first, then calls del for each
// (nil entries skipped), up to n at once, and returns the first error, which
// cancels the rest. errorf is the client's own, so a bad level is reported
// like its other errors, naming the replica.
func DeleteEach(ctx context.Context, files []*ltx.FileInfo, n int, errorf func(format string, args ...any) error, del func(ctx context.Context, f *ltx.FileInfo) error) error {
	for _, f := range files {
		if f == nil {
			continue
		}
		if err := CheckLevel(f.Level); err != nil {
			return errorf("delete %s: %w", Describe(f.Level, f.MinTXID, f.MaxTXID), err)
		}
	}
	if err := ctx.Err(); err != nil {
		return errorf("delete: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for _, f := range files {
		if f == nil {
			continue
		}
		g.Go(func() error { return del(gctx, f) })
	}
	return g.Wait()
}
