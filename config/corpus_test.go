package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// corpusDir holds real Litestream configs: from Litestream's repository
// (v0.5.17) and its documentation (litestream.io), each file naming its
// source on its first line, each accepted by Litestream 0.5.17's
// `litestream databases -config` (with the variables it names set to
// dummy values).
const corpusDir = "testdata/litestream"

// refusedOnPurpose are the configs of the corpus that walship refuses,
// with why: each sends two databases to one replica, which Litestream
// runs (and the two overwrite each other's files) and walship does not
// (see "One writer per replica" in the README).
var refusedOnPurpose = map[string]string{
	"main-test-news3replicafromconfig-signacceptencodinginheritance-511.yml": "sends to the same destination",
}

// minCorpus is how many configs the corpus holds at least, so that the
// test below cannot pass by finding none.
const minCorpus = 120

// varRE matches the ${VAR} references of a config.
var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// corpusFile reads a config of the corpus, with every variable it names
// set to "dummy-NAME" (as it was when Litestream accepted it), and returns
// its text expanded.
func corpusFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^# source: https://github\.com/benbjohnson/litestream(\.io)?/blob/\S+`).Match(data) {
		t.Fatalf("%s: the first line does not name its source (# source: https://github.com/benbjohnson/litestream...)", path)
	}
	for _, m := range varRE.FindAllStringSubmatch(string(data), -1) {
		t.Setenv(m[1], "dummy-"+m[1])
	}
	return []byte(expand(string(data)))
}

// Every config of the corpus parses, and every key in it is either used
// (removing it, or changing its value, changes the parsed config or its
// warnings) or named by a warning: walship never ignores a key of a
// Litestream config silently.
func TestLitestreamCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < minCorpus {
		t.Fatalf("the corpus holds %d configs; want at least %d", len(files), minCorpus)
	}
	warnings := map[string][]string{} // file -> warned keys
	keys := 0
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			data := corpusFile(t, path)
			cfg, err := Parse(name, data, false)
			if why, ok := refusedOnPurpose[name]; ok {
				if err == nil || !strings.Contains(err.Error(), why) {
					t.Fatalf("error %v; want walship to refuse it: %s", err, why)
				}
				return
			}
			if err != nil {
				t.Fatalf("Litestream accepts this config; walship refuses it:\n%v", err)
			}
			for _, w := range cfg.Warnings {
				warnings[name] = append(warnings[name], w.Key)
				if w.File != name || w.Line <= 0 || w.Key == "" || !strings.HasPrefix(w.String(), fmt.Sprintf("%s:%d: %s: ", name, w.Line, w.Key)) {
					t.Errorf("warning without its file, line or key: %+v", w)
				}
			}
			silent, n := silentKeys(t, name, data, Parse)
			keys += n
			for _, k := range silent {
				t.Errorf("key %s is neither used nor warned about", k)
			}
		})
	}
	if keys < 5*len(files) {
		t.Errorf("the corpus's %d configs hold %d keys in all; the key walk is broken", len(files), keys)
	}

	// Configs with Litestream's keys that walship does not act on give
	// warnings, naming those keys.
	for file, want := range map[string][]string{
		"io-config-mcp.yml":                {"mcp-addr"},
		"provider-compat-validation.yml":   {"validation"},
		"io-config-retention.yml":          {"dbs[0].replicas[0].retention"},
		"io-tigris-override.yml":           {"dbs[0].replica.sign-payload", "dbs[0].replica.require-content-md5"},
		"io-config-database-options.yml":   {"dbs[0].monitor-interval"},
		"io-config-global-credentials.yml": {"access-key-id", "secret-access-key"},
	} {
		for _, k := range want {
			if !slices.Contains(warnings[file], k) {
				t.Errorf("%s: no warning about %s (warnings: %q)", file, k, warnings[file])
			}
		}
	}
	// A floor that says the warnings are looked at: it falls as walship
	// supports more of Litestream's keys (socket and directories, in
	// issue 16).
	if len(warnings) < 15 {
		t.Errorf("only %d of %d configs give warnings", len(warnings), len(files))
	}
}

// The check of TestLitestreamCorpus finds a key that the parser drops: it
// cannot pass for want of looking.
func TestSilentKeysFindsDroppedKey(t *testing.T) {
	data := []byte("logging:\n  level: info\ndbs:\n  - path: /a.db\n    busy-timeout: 5s\n    replica:\n      url: file:///backups/a\n")
	if silent, _ := silentKeys(t, "t.yml", data, Parse); len(silent) != 0 {
		t.Fatalf("silent keys %q in a config walship reads whole", silent)
	}
	// A parser that never reads busy-timeout.
	dropping := func(name string, data []byte, expandEnv bool) (*Config, error) {
		return Parse(name, regexp.MustCompile(`(?m)^\s*busy-timeout:.*$`).ReplaceAll(data, nil), expandEnv)
	}
	if silent, _ := silentKeys(t, "t.yml", data, dropping); !slices.Equal(silent, []string{"dbs[0].busy-timeout (line 5)"}) {
		t.Fatalf("silent keys %q; want the dropped busy-timeout", silent)
	}
}

// parseFunc is Parse, or a stand-in for it.
type parseFunc func(name string, data []byte, expandEnv bool) (*Config, error)

// silentKeys returns the keys of the YAML data that parse neither uses nor
// warns about, and how many keys it looked at. A key is used when
// removing it, or changing its value, makes parse fail or changes the
// config or its warnings.
func silentKeys(t *testing.T, name string, data []byte, parse parseFunc) (silent []string, n int) {
	t.Helper()
	cfg, err := parse(name, data, false)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	want := normalized(cfg)
	keys := yamlKeys(&doc)
	used := map[string]bool{}
	// Deepest first: a mapping or list is used when a key in it is.
	slices.SortStableFunc(keys, func(a, b yamlKey) int { return strings.Count(b.path, ".") - strings.Count(a.path, ".") })
	for _, k := range keys {
		n++
		if warnedAbout(cfg.Warnings, k.path) || used[k.path] {
			used[k.path] = true
			markParents(used, k.path)
			continue
		}
		if k.used(t, name, &doc, parse, want) {
			used[k.path] = true
			markParents(used, k.path)
			continue
		}
		silent = append(silent, fmt.Sprintf("%s (line %d)", k.path, k.line))
	}
	slices.Sort(silent)
	return silent, n
}

// markParents marks the keys that hold path as used.
func markParents(used map[string]bool, path string) {
	for i := len(path) - 1; i > 0; i-- {
		if path[i] == '.' || path[i] == '[' {
			used[path[:i]] = true
		}
	}
}

// used reports whether removing k, or changing its value, makes parse fail
// or changes what it makes of doc.
func (k yamlKey) used(t *testing.T, name string, doc *yaml.Node, parse parseFunc, want any) bool {
	t.Helper()
	{
		for _, mutate := range k.mutations() {
			restore := mutate()
			out, err := yaml.Marshal(doc)
			restore()
			if err != nil {
				t.Fatal(err)
			}
			got, err := parse(name, out, false)
			if err != nil || !reflect.DeepEqual(normalized(got), want) {
				return true
			}
		}
	}
	return false
}

// warnedAbout reports whether a warning names the key at path, or an
// entry or mapping that holds it.
func warnedAbout(warnings []Warning, path string) bool {
	for _, w := range warnings {
		if path == w.Key || strings.HasPrefix(path, w.Key+".") || strings.HasPrefix(path, w.Key+"[") {
			return true
		}
	}
	return false
}

// normalized returns what parse made of a file, less what depends on line
// numbers: its settings, and its warnings by key and message.
func normalized(cfg *Config) any {
	if cfg == nil {
		return nil
	}
	c := *cfg
	c.Warnings = nil
	c.Levels = slices.Clone(c.Levels)
	for i := range c.Levels {
		c.Levels[i].Line = 0
	}
	c.DBs = nil
	for _, db := range cfg.DBs {
		d := *db
		d.Line = 0
		d.Replica, d.Replicas = nil, nil
		if db.Replica != nil {
			r := *db.Replica
			r.Line = 0
			d.Replica = &r
		}
		for _, r := range db.Replicas {
			r2 := *r
			r2.Line = 0
			d.Replicas = append(d.Replicas, &r2)
		}
		c.DBs = append(c.DBs, &d)
	}
	var warnings []string
	for _, w := range cfg.Warnings {
		warnings = append(warnings, w.Key+": "+w.Msg)
	}
	return struct {
		Config   Config
		Warnings []string
	}{c, warnings}
}

// yamlKey is a key of a YAML document, where it is, and how to change it.
type yamlKey struct {
	path    string
	line    int
	mapping *yaml.Node // the mapping holding it
	index   int        // of the key node in mapping.Content
}

// mutations returns ways to change the document at k, each returning how
// to undo it: remove the key, and, for a single value, replace it with
// others.
func (k yamlKey) mutations() []func() func() {
	remove := func() func() {
		saved := slices.Clone(k.mapping.Content)
		k.mapping.Content = slices.Delete(k.mapping.Content, k.index, k.index+2)
		return func() { k.mapping.Content = saved }
	}
	out := []func() func(){remove}
	val := k.mapping.Content[k.index+1]
	if val.Kind != yaml.ScalarNode {
		return out
	}
	var others []string
	switch val.ShortTag() {
	case "!!bool":
		b, _ := strconv.ParseBool(val.Value)
		others = []string{strconv.FormatBool(!b)}
	default:
		others = []string{"7", "7s", val.Value + "7", "x" + val.Value}
	}
	for _, o := range others {
		out = append(out, func() func() {
			saved := *val
			val.Value, val.Tag, val.Style = o, "", 0
			return func() { *val = saved }
		})
	}
	return out
}

// yamlKeys returns every key of the document, with the key paths the
// parser uses in its messages ("dbs[0].replica.url").
func yamlKeys(doc *yaml.Node) []yamlKey {
	var out []yamlKey
	var walk func(n *yaml.Node, where string)
	walk = func(n *yaml.Node, where string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, where)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", where, i))
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				kn := n.Content[i]
				path := join(where, kn.Value)
				out = append(out, yamlKey{path: path, line: kn.Line, mapping: n, index: i})
				walk(n.Content[i+1], path)
			}
		}
	}
	walk(doc, "")
	return out
}
