package azure

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	azruntime "github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

// sdkError is an error of the SDK reworded for an operator, with any secret
// removed from its text. It wraps the SDK's error.
type sdkError struct {
	msg string
	err error
}

func (e *sdkError) Error() string { return e.msg }

func (e *sdkError) Unwrap() error { return e.err }

// sasSig matches the signature of a SAS in a URL or message.
var sasSig = regexp.MustCompile(`(?i)(sig=)[^&\s"']+`)

// redact removes secrets from s: the client's key and SAS token, and any
// SAS signature.
func (c *Client) redact(s string) string {
	for _, secret := range c.secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "REDACTED")
		}
	}
	return sasSig.ReplaceAllString(s, "${1}REDACTED")
}

// endpointForMessage returns an endpoint as an error may show it, quoted:
// without user info (user:password@), query or fragment, which may hold
// secrets, whether or not the value parses as a URL. Everything up to the
// last "@" is user info, since a password may hold "/", "?" or "#"
// unescaped. What was left out is marked with "...". A value that does not
// start with a scheme ("https://") is not shown at all: it may be a key
// pasted in the wrong place.
func endpointForMessage(s string) string {
	i := strings.Index(s, "://")
	if i <= 0 || strings.IndexFunc(s[:i], func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '+' || r == '-' || r == '.')
	}) >= 0 {
		return "(not shown: it does not start with http:// or https://)"
	}
	var userInfo, query string
	scheme, rest := s[:i+3], s[i+3:]
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		userInfo, rest = "...@", rest[i+1:]
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		query, rest = rest[i:i+1]+"...", rest[:i]
	}
	return strconv.Quote(scheme + userInfo + rest + query)
}

// sdkError rewords an error of the SDK: an answer of the service becomes
// "<code> (HTTP <status>): <message>" with a hint where there is an obvious
// fix (instead of the SDK's multi-line dump); other errors keep their text.
// Either way secrets are removed. Context errors are returned as they are.
func (c *Client) sdkError(err error) error {
	if err == nil || err == context.Canceled || err == context.DeadlineExceeded {
		return err
	}
	if se := (*sdkError)(nil); errors.As(err, &se) {
		// Reworded already, deeper in the chain: keep the added context.
		return &sdkError{msg: c.redact(err.Error()), err: err}
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return &sdkError{msg: c.redact(err.Error()), err: err}
	}
	code := re.ErrorCode
	if code == "" {
		code = http.StatusText(re.StatusCode)
	}
	msg := fmt.Sprintf("%s (HTTP %d)", code, re.StatusCode)
	if m := serviceMessage(re); m != "" {
		msg += ": " + m
	}
	switch {
	case code == string(bloberror.ContainerNotFound):
		msg += fmt.Sprintf("; create container %q first (az storage container create --name %s), or fix the container name", c.container, c.container)
	case code == string(bloberror.AuthenticationFailed) || code == string(bloberror.InvalidAuthenticationInfo) ||
		strings.Contains(strings.ToLower(msg), "failed to authenticate"):
		switch {
		case strings.HasPrefix(c.auth, "shared key"):
			msg += fmt.Sprintf("; check the account name %q and the account key (%s)", c.account, c.auth)
		case c.auth == "SAS token":
			msg += "; check that the sas-token is complete, made for this account and container, and not expired"
		default:
			msg += "; check the Microsoft Entra ID identity (az account show) and its tenant"
		}
	case re.StatusCode == http.StatusForbidden:
		msg += "; the credentials lack a permission: a SAS needs read, add, create, write, delete and list on the container; an Entra ID identity needs the Storage Blob Data Contributor role"
	}
	return &sdkError{msg: c.redact(msg), err: err}
}

// serviceMessage returns the first line of the <Message> of an Azure
// Storage error answer, if any.
func serviceMessage(re *azcore.ResponseError) string {
	if re.RawResponse == nil {
		return ""
	}
	body, err := azruntime.Payload(re.RawResponse)
	if err != nil || len(body) == 0 {
		return ""
	}
	var e struct {
		Message string `xml:"Message"`
	}
	if xml.Unmarshal(body, &e) != nil {
		return ""
	}
	m, _, _ := strings.Cut(strings.TrimSpace(e.Message), "\n")
	return strings.TrimSuffix(strings.TrimSpace(m), ".")
}
