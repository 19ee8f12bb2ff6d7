package azure

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/walship/walship/storage"
)

// config is what Open reads from a spec.
type config struct {
	account, container, prefix, endpoint string
	accountKey, sasToken                 string
	keySource                            string
	partSize                             int64
	concurrency                          int
	skipVerify                           bool
}

// parseSpec reads and validates the destination and the keys of spec.
func parseSpec(spec storage.Spec) (config, error) {
	u := spec.URL
	if u == nil {
		return config{}, errors.New("abs replica: no URL")
	}
	if !strings.EqualFold(u.Scheme, Type) {
		return config{}, fmt.Errorf("abs replica: URL scheme is %q, not abs", u.Scheme)
	}
	cfg := config{container: u.Host, prefix: strings.Trim(u.Path, "/")}
	if u.User != nil {
		cfg.account = u.User.Username()
		if _, ok := u.User.Password(); ok {
			return config{}, fmt.Errorf("abs replica abs://%s@%s: a password in the URL is not read; put the account key in the account-key key or in %s", cfg.account, cfg.container, EnvAccountKey)
		}
	}
	if v := spec.Option("account-name", "account-name", "accountName"); v != "" {
		if cfg.account != "" && cfg.account != v {
			return config{}, fmt.Errorf("abs replica abs://%s@%s: the URL names account %q but account-name is %q: keep one", cfg.account, cfg.container, cfg.account, v)
		}
		cfg.account = v
	}
	if cfg.account == "" {
		cfg.account = os.Getenv(EnvAccount)
	}
	if v := spec.Option("bucket"); v != "" {
		cfg.container = v
	}
	if v, ok := spec.Keys["path"]; ok && v != "" {
		cfg.prefix = strings.Trim(v, "/")
	}

	// Messages below describe the destination as String will.
	dest := (&Client{account: cfg.account, container: cfg.container, prefix: cfg.prefix}).String()
	fail := func(format string, args ...any) (config, error) {
		return config{}, fmt.Errorf("abs replica %s: "+format, append([]any{dest}, args...)...)
	}

	if cfg.container == "" {
		return fail("no container: write abs://ACCOUNT@CONTAINER/PATH, or set bucket")
	}
	if err := checkContainerName(cfg.container); err != nil {
		return fail("%w", err)
	}

	cfg.endpoint = strings.TrimRight(spec.Option("endpoint", "endpoint"), "/")
	if cfg.endpoint == "" {
		if cfg.account == "" {
			return fail("no storage account: write abs://ACCOUNT@%s/PATH, or set account-name or %s", cfg.container, EnvAccount)
		}
		if !validAccountName(cfg.account) {
			return fail("storage account name %q is not valid: it has 3 to 24 lower-case letters and digits", cfg.account)
		}
		cfg.endpoint = "https://" + cfg.account + ".blob.core.windows.net"
	} else {
		e, err := url.Parse(cfg.endpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.User != nil ||
			e.RawQuery != "" || e.ForceQuery || e.Fragment != "" || e.Opaque != "" {
			return fail("endpoint %s is not a URL like https://ACCOUNT.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1 (no user, password or query: put the key in account-key, a SAS in sas-token)", endpointForMessage(cfg.endpoint))
		}
	}

	// Credentials, in order.
	if v := spec.Option("account-key", "account-key", "accountKey"); v != "" {
		cfg.accountKey, cfg.keySource = v, "account-key"
	} else if v := sasToken(spec); v != "" {
		cfg.sasToken = v
	} else if v := os.Getenv(EnvAccountKey); v != "" {
		cfg.accountKey, cfg.keySource = v, EnvAccountKey
	} else if v := os.Getenv(EnvLitestreamAccountKey); v != "" {
		cfg.accountKey, cfg.keySource = v, EnvLitestreamAccountKey
	} else if v := os.Getenv(EnvLitestreamSASToken); v != "" {
		cfg.sasToken = strings.TrimPrefix(strings.TrimSpace(v), "?")
	}
	if cfg.accountKey != "" && cfg.account == "" {
		return fail("the account key from %s needs the storage account name: write abs://ACCOUNT@%s/PATH, or set account-name or %s", cfg.keySource, cfg.container, EnvAccount)
	}

	var err error
	if cfg.partSize, err = spec.SizeOption(DefaultPartSize, "part-size", "part-size", "partSize"); err != nil {
		return fail("%w", err)
	}
	if cfg.partSize < minPartSize || cfg.partSize > maxPartSize {
		return fail("part-size %d is out of range: use 1MiB to 4000MiB (default 4MiB)", cfg.partSize)
	}
	if cfg.concurrency, err = spec.IntOption(DefaultConcurrency, "concurrency", "concurrency"); err != nil {
		return fail("%w", err)
	}
	if cfg.skipVerify, err = spec.BoolOption(false, "skip-verify", "skip-verify", "skipVerify"); err != nil {
		return fail("%w", err)
	}
	return cfg, nil
}

// optionNames are the URL query parameters that are walship's own; any other
// query parameters, when they hold a "sig", are taken as a pasted SAS token.
var optionNames = []string{
	"account-name", "accountName", "account-key", "accountKey", "sas-token", "sasToken",
	"endpoint", "part-size", "partSize", "concurrency", "skip-verify", "skipVerify",
}

// sasToken returns the SAS token of spec, without a leading "?": the
// sas-token key or query parameter, else the URL's other query parameters
// when they are a SAS (they hold "sig").
func sasToken(spec storage.Spec) string {
	if v := spec.Option("sas-token", "sas-token", "sasToken"); v != "" {
		return strings.TrimPrefix(strings.TrimSpace(v), "?")
	}
	q := spec.URL.Query()
	if q.Get("sig") == "" {
		return ""
	}
	for _, n := range optionNames {
		q.Del(n)
	}
	return q.Encode()
}

// checkContainerName checks the rules of Azure for container names, so a
// typo fails at start-up with a clear message rather than with a 400.
func checkContainerName(name string) error {
	if name == "$root" || name == "$web" {
		return nil
	}
	const rules = "it has 3 to 63 lower-case letters, digits and single dashes, and starts and ends with a letter or digit"
	if len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' || strings.Contains(name, "--") {
		return fmt.Errorf("container name %q is not valid: %s", name, rules)
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return fmt.Errorf("container name %q is not valid: %s", name, rules)
		}
	}
	return nil
}

func validAccountName(name string) bool {
	if len(name) < 3 || len(name) > 24 {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
