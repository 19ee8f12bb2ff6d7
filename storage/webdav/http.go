package webdav

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walship/walship/storage"
)

// entry is one resource of a PROPFIND answer.
type entry struct {
	name  string // base name, unescaped
	isDir bool
	size  int64 // -1 when not reported
	mtime time.Time
}

const propfindBody = `<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>`

// propfind lists p (Depth 0: p itself; Depth 1: p and its members). found
// is false when p does not exist.
func (c *Client) propfind(ctx context.Context, p, depth string) (entries []entry, found bool, err error) {
	err = storage.Retry(ctx, c.retry, retryable, func(ctx context.Context) error {
		req, err := c.newRequest(ctx, "PROPFIND", p, strings.NewReader(propfindBody))
		if err != nil {
			return err
		}
		req.Header.Set("Depth", depth)
		req.Header.Set("Content-Type", `application/xml; charset="utf-8"`)
		res, err := c.http.Do(req)
		if err != nil {
			return err
		}
		switch res.StatusCode {
		case http.StatusNotFound:
			drain(res)
			entries, found = nil, false
			return nil
		case http.StatusMultiStatus:
		default:
			return c.statusError(res)
		}
		defer res.Body.Close()
		var ms multistatus
		if err := xml.NewDecoder(res.Body).Decode(&ms); err != nil {
			// A body that is not WebDAV XML is not worth another try, but
			// tells the operator what answered; one cut short on the way
			// (a read error, or XML ending early) is.
			var syntax *xml.SyntaxError
			if errors.As(err, &syntax) && !strings.Contains(syntax.Msg, "unexpected EOF") {
				return fmt.Errorf("PROPFIND %s: the answer is not a WebDAV multistatus (is the URL a WebDAV collection?): %w", p, permanent(err))
			}
			return fmt.Errorf("PROPFIND %s: read the answer: %w", p, retryLater(err))
		}
		entries, found = ms.entries(), true
		return nil
	})
	return entries, found, err
}

// multistatus is the body of a 207 Multi-Status answer to PROPFIND.
type multistatus struct {
	Responses []struct {
		Href      string `xml:"DAV: href"`
		Propstats []struct {
			Status string `xml:"DAV: status"`
			Prop   struct {
				ResourceType struct {
					Collection *struct{} `xml:"DAV: collection"`
				} `xml:"DAV: resourcetype"`
				ContentLength string `xml:"DAV: getcontentlength"`
				LastModified  string `xml:"DAV: getlastmodified"`
			} `xml:"DAV: prop"`
		} `xml:"DAV: propstat"`
	} `xml:"DAV: response"`
}

// entries returns the resources of a multistatus, reading only the
// properties of successful propstats (a 404 propstat lists the properties a
// server does not have).
func (ms *multistatus) entries() []entry {
	out := make([]entry, 0, len(ms.Responses))
	for _, r := range ms.Responses {
		p := r.Href
		if u, err := url.Parse(strings.TrimSpace(r.Href)); err == nil {
			p = u.Path
		}
		e := entry{name: path.Base(strings.TrimSuffix(p, "/")), size: -1, isDir: strings.HasSuffix(p, "/")}
		for _, ps := range r.Propstats {
			if ps.Status != "" && !strings.Contains(ps.Status, " 200") {
				continue
			}
			if ps.Prop.ResourceType.Collection != nil {
				e.isDir = true
			}
			if v := strings.TrimSpace(ps.Prop.ContentLength); v != "" {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
					e.size = n
				}
			}
			if v := strings.TrimSpace(ps.Prop.LastModified); v != "" {
				if t, err := http.ParseTime(v); err == nil {
					e.mtime = t.UTC()
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// newRequest returns a request for path p on the server, with credentials.
func (c *Client) newRequest(ctx context.Context, method, p string, body io.Reader) (*http.Request, error) {
	u := c.base
	u.Path = p
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if c.cfg.user != "" {
		req.SetBasicAuth(c.cfg.user, c.cfg.password)
	}
	req.Header.Set("User-Agent", "walship")
	return req, nil
}

// httpError is an answer with a status the operation did not expect.
type httpError struct {
	Method string
	Path   string
	Status int
	Text   string // the start of the body, one line, credentials removed
}

func (e *httpError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	switch e.Status {
	case http.StatusUnauthorized:
		msg += " (check user and password)"
	case http.StatusForbidden:
		msg += " (the user may not write there)"
	}
	if e.Text != "" {
		msg += ": " + e.Text
	}
	return msg
}

// statusError reads the start of an unexpected answer and closes it.
func (c *Client) statusError(res *http.Response) error {
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	text := strings.Join(strings.Fields(string(b)), " ")
	if len(text) > 200 {
		text = text[:200] + "..."
	}
	for _, s := range c.secrets {
		if s != "" {
			text = strings.ReplaceAll(text, s, "REDACTED")
		}
	}
	if strings.HasPrefix(text, "<") {
		text = "" // an HTML or XML page says little in one line
	}
	if loc := res.Header.Get("Location"); res.StatusCode/100 == 3 && loc != "" {
		if u, err := url.Parse(loc); err == nil {
			u.User = nil
			loc = u.String()
		}
		text = "redirected to " + loc + "; point the replica URL there"
	}
	return &httpError{Method: res.Request.Method, Path: res.Request.URL.Path, Status: res.StatusCode, Text: text}
}

// drain reads what is left of an answer and closes it, so that the
// connection can be reused.
func drain(res *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
}

// permanentError marks an error that a retry cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err: err} }

// transientError marks an error that a retry may fix.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }

func (e *transientError) Unwrap() error { return e.err }

func retryLater(err error) error { return &transientError{err: err} }

// sourceError is a failure to read the data to upload: not the server's
// fault, and not worth a retry.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "read the file to upload: " + e.err.Error() }

func (e *sourceError) Unwrap() error { return e.err }

// errAttemptOver is what the body of an upload attempt reads once the
// attempt has ended.
var errAttemptOver = errors.New("upload attempt ended")

// sourceReader is the body of one upload attempt. It remembers a failure of
// the reader it reads, and stops reading when the attempt ends: the HTTP
// transport may still read a body after it has returned, which must not
// race with the next attempt rewinding the same source.
type sourceReader struct {
	mu   sync.Mutex
	r    io.Reader
	err  error
	over bool
}

func (s *sourceReader) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.over {
		return 0, errAttemptOver
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// end ends the attempt and returns the reader's failure, if any.
func (s *sourceReader) end() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.over = true
	return s.err
}

// retryable reports whether a request that failed with err may succeed if
// sent again: throttling (429), a server error (5xx but 501 and 505), a
// request timeout (408), or a transport failure other than a certificate
// that does not verify.
func retryable(err error) bool {
	var (
		he *httpError
		pe *permanentError
		se *sourceError
		te *transientError
	)
	switch {
	case errors.As(err, &te):
		return true
	case errors.As(err, &he):
		s := he.Status
		return s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s == http.StatusLocked ||
			s >= 500 && s != http.StatusNotImplemented && s != http.StatusHTTPVersionNotSupported
	case errors.As(err, &pe), errors.As(err, &se):
		return false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
		recordHeader     tls.RecordHeaderError
	)
	if errors.As(err, &unknownAuthority) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verification) || errors.As(err, &recordHeader) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF)
}
