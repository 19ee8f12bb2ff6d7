package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"syscall"
	"time"

	"github.com/walship/walship/internal/monitor"
)

// Client talks to the control socket of a running walship replicate.
type Client struct {
	path string
	http *http.Client
}

// NewClient returns a client of the socket at path. It connects at each
// request.
func NewClient(path string) *Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &Client{path: path, http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		},
	}}}
}

// Error is an error the process answered with.
type Error struct {
	Status  int             // the HTTP status
	Message string          // what the process said
	Details json.RawMessage // for a sync that timed out: the replicas behind (walship.BehindError)
}

func (e *Error) Error() string { return e.Message }

// Sync asks the process to capture the database at path now and, with
// wait, to answer once every replica holds it, within timeout (zero:
// DefaultSyncWaitTimeout with wait, unbounded without). A relative path is
// made absolute first, as this process sees it.
func (c *Client) Sync(ctx context.Context, path string, wait bool, timeout time.Duration) (SyncResponse, error) {
	var resp SyncResponse
	abs, err := filepath.Abs(path)
	if err != nil {
		return resp, fmt.Errorf("database path %q: %w", path, err)
	}
	body, err := json.Marshal(SyncRequest{Path: abs, Wait: wait, Timeout: timeout.Seconds()})
	if err != nil {
		return resp, err
	}
	return resp, c.do(ctx, http.MethodPost, "/sync", body, &resp)
}

// List returns the process's databases.
func (c *Client) List(ctx context.Context) (ListResponse, error) {
	var resp ListResponse
	return resp, c.do(ctx, http.MethodGet, "/list", nil, &resp)
}

// Info returns what the process says of itself.
func (c *Client) Info(ctx context.Context) (InfoResponse, error) {
	var resp InfoResponse
	return resp, c.do(ctx, http.MethodGet, "/info", nil, &resp)
}

// Status returns the state of every database of the process, or of the
// one at path if path is not empty.
func (c *Client) Status(ctx context.Context, path string) (monitor.Report, error) {
	var rep monitor.Report
	target := "/status"
	if path != "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return rep, fmt.Errorf("database path %q: %w", path, err)
		}
		target += "?path=" + url.QueryEscape(abs)
	}
	return rep, c.do(ctx, http.MethodGet, target, nil, &rep)
}

func (c *Client) do(ctx context.Context, method, target string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://walship"+target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.connectError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("control socket %s: read the answer to %s %s: %w", c.path, method, target, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error   string          `json:"error"`
			Details json.RawMessage `json:"details"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s: %s", method, target, resp.Status, bytes.TrimSpace(data))
		}
		return &Error{Status: resp.StatusCode, Message: e.Error, Details: e.Details}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("control socket %s: %s %s: %w", c.path, method, target, err)
	}
	return nil
}

// connectError says why the socket cannot be reached, and what to check.
func (c *Client) connectError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no walship answers on the control socket %s (%w): is walship replicate running, with socket: enabled: true and this path in its config file?", c.path, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("the control socket %s refuses this user (%w): run as the user walship replicate runs as, or widen socket.permissions", c.path, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("control socket %s: no answer in time: %w", c.path, err)
	}
	return fmt.Errorf("control socket %s: %w", c.path, err)
}
