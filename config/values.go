package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/walship/walship/internal/bytesize"
)

// str returns a scalar value as a string; null is "". Lists and mappings
// are reported.
func (p *parser) str(kv pair) string {
	if isNull(kv.val) {
		return ""
	}
	if kv.val.Kind != yaml.ScalarNode {
		p.errorf(kv.line, "%s: must be a single value, not %s", kv.path, kindName(kv.val))
		return ""
	}
	return kv.val.Value
}

// strList joins a list of single values with commas.
func (p *parser) strList(kv pair) string {
	var vals []string
	for _, n := range kv.val.Content {
		if n.Kind != yaml.ScalarNode {
			p.errorf(n.Line, "%s: list items must be single values, not %s", kv.path, kindName(n))
			return ""
		}
		vals = append(vals, n.Value)
	}
	return strings.Join(vals, ",")
}

// dayRE matches a number of days, which Go durations cannot express.
var dayRE = regexp.MustCompile(`^\d+d$`)

// duration parses a non-negative Go duration ("1s", "500ms", "0"); null is
// unset (nil).
func (p *parser) duration(kv pair) *time.Duration {
	return p.parseDuration(kv, false)
}

// positiveDuration is [parser.duration] for settings where 0 makes no
// sense, such as the interval of a periodic task.
func (p *parser) positiveDuration(kv pair) *time.Duration {
	return p.parseDuration(kv, true)
}

// parseDuration parses a Go duration, which must be greater than 0 if
// positive is set and not negative otherwise; null is unset (nil).
func (p *parser) parseDuration(kv pair, positive bool) *time.Duration {
	if isNull(kv.val) {
		return nil
	}
	if kv.val.Kind != yaml.ScalarNode {
		p.errorf(kv.line, "%s: must be a duration such as 1s or 500ms, not %s", kv.path, kindName(kv.val))
		return nil
	}
	s := strings.TrimSpace(kv.val.Value)
	d, err := time.ParseDuration(s)
	if err != nil {
		hint := ""
		switch {
		case dayRE.MatchString(s):
			hint = "; there is no day unit, write 24h for a day"
		case isInteger(s):
			hint = "; a number needs a unit, e.g. " + s + "s"
		}
		p.errorf(kv.line, "%s: invalid duration %s (use a Go duration such as 1s or 500ms%s)", kv.path, show(kv.key, s), hint)
		return nil
	}
	if positive && d <= 0 {
		p.errorf(kv.line, "%s: duration must be greater than 0 (got %s)", kv.path, show(kv.key, s))
		return nil
	}
	if d < 0 {
		p.errorf(kv.line, "%s: duration must not be negative (got %s)", kv.path, show(kv.key, s))
		return nil
	}
	return &d
}

// size parses a byte size greater than 0: a YAML integer (bytes) or a
// string of a whole number and an optional unit (see bytesize.Help, any letter
// case, optionally separated by spaces). Null is unset (nil).
func (p *parser) size(kv pair) *int64 {
	if isNull(kv.val) {
		return nil
	}
	if kv.val.Kind != yaml.ScalarNode {
		p.errorf(kv.line, "%s: must be a size such as 1073741824, 512MB or 1GiB, not %s", kv.path, kindName(kv.val))
		return nil
	}
	raw := strings.TrimSpace(kv.val.Value)
	invalid := func(hint string) *int64 {
		p.errorf(kv.line, "%s: invalid size %s (%s%s)", kv.path, show(kv.key, raw), bytesize.Help, hint)
		return nil
	}
	var n int64
	switch kv.val.ShortTag() {
	case "!!int":
		if err := kv.val.Decode(&n); err != nil {
			if strings.HasPrefix(raw, "-") {
				return p.nonPositiveSize(kv, raw)
			}
			return p.sizeTooLarge(kv, raw)
		}
	case "!!str":
		var err error
		var e *bytesize.Error
		if n, err = bytesize.Parse(raw); errors.As(err, &e) {
			switch e.Err {
			case bytesize.ErrNotPositive:
				return p.nonPositiveSize(kv, raw)
			case bytesize.ErrTooLarge:
				return p.sizeTooLarge(kv, raw)
			case bytesize.ErrFraction:
				return invalid("; " + e.Err.Error())
			case bytesize.ErrUnit:
				return invalid(fmt.Sprintf("; unknown unit %q", e.Unit))
			}
			return invalid("")
		}
	case "!!float":
		if strings.Trim(raw, "+0123456789") == "" { // an integer too large for !!int
			return p.sizeTooLarge(kv, raw)
		}
		return invalid("; " + bytesize.ErrFraction.Error())
	default:
		return invalid("")
	}
	if n <= 0 {
		return p.nonPositiveSize(kv, raw)
	}
	return &n
}

func (p *parser) nonPositiveSize(kv pair, raw string) *int64 {
	p.errorf(kv.line, "%s: size must be greater than 0 (got %s)", kv.path, show(kv.key, raw))
	return nil
}

func (p *parser) sizeTooLarge(kv pair, raw string) *int64 {
	p.errorf(kv.line, "%s: size %s is too large (at most %d bytes)", kv.path, show(kv.key, raw), int64(math.MaxInt64))
	return nil
}

// count parses a non-negative integer (a page count); null is unset (nil).
func (p *parser) count(kv pair) *int {
	if isNull(kv.val) {
		return nil
	}
	if kv.val.Kind != yaml.ScalarNode {
		p.errorf(kv.line, "%s: must be a whole number, not %s", kv.path, kindName(kv.val))
		return nil
	}
	var n int
	var err error
	switch kv.val.ShortTag() {
	case "!!int":
		err = kv.val.Decode(&n)
	case "!!str":
		n, err = strconv.Atoi(strings.TrimSpace(kv.val.Value))
	default:
		err = errors.New("not an integer")
	}
	if err != nil {
		p.errorf(kv.line, "%s: invalid number %s (use a whole number of pages such as 1000)", kv.path, show(kv.key, kv.val.Value))
		return nil
	}
	if n < 0 {
		p.errorf(kv.line, "%s: page count must not be negative (got %s)", kv.path, show(kv.key, kv.val.Value))
		return nil
	}
	return &n
}

// boolean parses true/false; null is false.
func (p *parser) boolean(kv pair) bool {
	if isNull(kv.val) {
		return false
	}
	var b bool
	if kv.val.Kind != yaml.ScalarNode || kv.val.Decode(&b) != nil {
		hint := ""
		if kv.val.Kind == yaml.ScalarNode && kv.val.Style&(yaml.SingleQuotedStyle|yaml.DoubleQuotedStyle) != 0 {
			hint = ", without quotes"
		}
		p.errorf(kv.line, "%s: invalid boolean %s (use true or false%s)", kv.path, show(kv.key, kv.val.Value), hint)
		return false
	}
	return b
}

// optBoolean parses true/false; null is unset (nil).
func (p *parser) optBoolean(kv pair) *bool {
	if isNull(kv.val) {
		return nil
	}
	b := p.boolean(kv)
	return &b
}

// resolve follows YAML aliases to the anchored node.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is absent, "~", "null" or an empty value.
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// kindName describes a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if isNull(n) {
			return "an empty value"
		}
		return "a single value"
	}
	return "an unsupported YAML node"
}

// join builds a key path.
func join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// describe names a location for "unknown key ... <describe>" messages.
func describe(where string) string {
	if where == "" {
		return "at top level"
	}
	return "in " + where
}

// isSecret reports whether the value of key may be confidential and must
// not appear in messages.
func isSecret(key string) bool {
	k := strings.ToLower(key)
	for _, s := range []string{"secret", "password", "key", "token"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// show quotes a value for a message, unless key names a secret.
func show(key, value string) string {
	if isSecret(key) {
		return "(value not shown)"
	}
	return strconv.Quote(value)
}

func isInteger(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// suggest returns the valid key closest to key, if close enough to be a
// likely misspelling.
func suggest(key string, valid []string) string {
	best, bestD := "", 0
	for _, v := range valid {
		d := editDistance(strings.ToLower(key), v)
		if best == "" || d < bestD {
			best, bestD = v, d
		}
	}
	if best == "" || bestD > max(2, len(key)/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
