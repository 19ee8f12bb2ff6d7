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
	"github.com/walship/walship/storage/backend"
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

// Register asks the process to replicate the database at req.Path to
// req.ReplicaURL. The database's path, a replica that is a directory path
// and the key files are made absolute first, as this process sees them.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (RegisterResponse, error) {
	var resp RegisterResponse
	var err error
	if req.Path != "" {
		if req.Path, err = absPath(req.Path); err != nil {
			return resp, err
		}
	}
	if backend.Scheme(req.ReplicaURL) == "" && req.ReplicaURL != "" {
		if req.ReplicaURL, err = absPath(req.ReplicaURL); err != nil {
			return resp, err
		}
	}
	if req.EncryptionKeyPath != "" {
		if req.EncryptionKeyPath, err = absPath(req.EncryptionKeyPath); err != nil {
			return resp, err
		}
	}
	for i, p := range req.EncryptionOldKeyPaths {
		if req.EncryptionOldKeyPaths[i], err = absPath(p); err != nil {
			return resp, err
		}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return resp, err
	}
	return resp, c.do(ctx, http.MethodPost, "/register", body, &resp)
}

// Unregister asks the process to replicate the database at path no more,
// once its last commits reach the replicas or timeout passes (zero:
// DefaultStopTimeout).
func (c *Client) Unregister(ctx context.Context, path string, timeout time.Duration) (StateResponse, error) {
	return c.changeState(ctx, "/unregister", path, timeout)
}

// Stop asks the process to pause the replication of the database at
// path, as Unregister, but keeping it for Start.
func (c *Client) Stop(ctx context.Context, path string, timeout time.Duration) (StateResponse, error) {
	return c.changeState(ctx, "/stop", path, timeout)
}

// Start asks the process to resume the replication of the database at
// path.
func (c *Client) Start(ctx context.Context, path string, timeout time.Duration) (StateResponse, error) {
	return c.changeState(ctx, "/start", path, timeout)
}

func (c *Client) changeState(ctx context.Context, target, path string, timeout time.Duration) (StateResponse, error) {
	var resp StateResponse
	abs, err := absPath(path)
	if err != nil {
		return resp, err
	}
	body, err := json.Marshal(PathRequest{Path: abs, Timeout: timeout.Seconds()})
	if err != nil {
		return resp, err
	}
	return resp, c.do(ctx, http.MethodPost, target, body, &resp)
}

func absPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("path %q: %w", p, err)
	}
	return abs, nil
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
