package config

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// logging parses the "logging" mapping.
func (p *parser) logging(kv pair, l *Logging) {
	if isNull(kv.val) {
		return
	}
	if kv.val.Kind != yaml.MappingNode {
		p.errorf(kv.line, "%s: must be a mapping with keys such as level: and type:, not %s", kv.path, kindName(kv.val))
		return
	}
	for _, e := range p.pairs(kv.val, kv.path) {
		switch e.key {
		case "level":
			v := strings.ToLower(strings.TrimSpace(p.str(e)))
			switch v {
			case "":
			case "debug", "info", "warn", "error":
				l.Level = v
			case "warning":
				l.Level = "warn"
			case "trace":
				l.Level = "debug"
				p.warnf(e.line, e.path, "walship has no trace level: it logs at debug, its most detailed")
			default:
				// Litestream logs at info then; so does walship, but says so.
				p.warnf(e.line, e.path, "unknown level %s: logging at info, as Litestream does; use debug, info, warn or error", show(e.key, e.val.Value))
			}
		case "type":
			v := strings.ToLower(strings.TrimSpace(p.str(e)))
			switch v {
			case "":
			case "text", "json":
				l.Type = v
			case "pretty":
				l.Type = "text"
				p.warnf(e.line, e.path, "walship has no pretty (coloured) logs: it writes text")
			default:
				p.errorf(e.line, "%s: invalid type %s (use text or json)", e.path, show(e.key, e.val.Value))
			}
		case "stderr":
			l.Stderr = p.optBoolean(e)
		case "source":
			l.Source = p.optBoolean(e)
		default:
			p.unknown(e, kv.path, loggingKeys, "", nil)
		}
	}
}

// maxLevels is the number of compaction levels a file may list: levels 1
// to 8, level 9 being snapshots.
const maxLevels = 8

// levels parses the "levels" list: compaction levels 1, 2, ... in order,
// each with an interval greater than 0 and greater than the one before.
func (p *parser) levels(kv pair) []Level {
	if isNull(kv.val) {
		return nil
	}
	if kv.val.Kind != yaml.SequenceNode {
		p.errorf(kv.line, "%s: must be a list of compaction levels (each entry starting with \"- interval: ...\"), not %s", kv.path, kindName(kv.val))
		return nil
	}
	if len(kv.val.Content) == 0 {
		p.errorf(kv.line, "%s: must list at least one level; leave levels out to use the default levels (30s, 5m, 1h)", kv.path)
		return nil
	}
	out := []Level{}
	type prevLevel struct {
		where string
		value string
		line  int
		d     time.Duration
	}
	var prev *prevLevel
	for i, item := range kv.val.Content {
		where := fmt.Sprintf("%s[%d]", kv.path, i)
		n := resolve(item)
		if i == maxLevels {
			p.errorf(n.Line, "%s: too many levels (%d listed); at most %d are allowed (levels 1 to %d; level %d holds snapshots, set by snapshot:)",
				where, len(kv.val.Content), maxLevels, maxLevels, maxLevels+1)
		}
		if n.Kind != yaml.MappingNode {
			p.errorf(n.Line, "%s: each level must be a mapping with an interval (e.g. \"- interval: 5m\"), not %s", where, kindName(n))
			continue
		}
		lvl := Level{Line: n.Line}
		var interval *pair
		for _, e := range p.pairs(n, where) {
			switch e.key {
			case "interval":
				interval = &e
				if d := p.positiveDuration(e); d != nil {
					lvl.Interval = *d
				}
			default:
				p.unknown(e, where, levelKeys, "", nil)
			}
		}
		if interval == nil || isNull(interval.val) {
			line := n.Line
			if interval != nil {
				line = interval.line
			}
			p.errorf(line, "%s: missing required key \"interval\" (how often the level is compacted, e.g. \"interval: 5m\")", where)
			continue
		}
		if lvl.Interval == 0 { // invalid; already reported
			continue
		}
		if prev != nil && lvl.Interval <= prev.d {
			p.errorf(interval.line, "%s: interval %s must be greater than the interval of the level before it (%s at line %d is %s); list levels from the shortest interval to the longest",
				interval.path, show(interval.key, strings.TrimSpace(interval.val.Value)), prev.where, prev.line, show(interval.key, prev.value))
		}
		prev = &prevLevel{where: interval.path, value: strings.TrimSpace(interval.val.Value), line: interval.line, d: lvl.Interval}
		out = append(out, lvl)
	}
	return out
}

// snapshot parses the "snapshot" mapping.
func (p *parser) snapshot(kv pair, s *Snapshot) {
	if isNull(kv.val) {
		return
	}
	if kv.val.Kind != yaml.MappingNode {
		p.errorf(kv.line, "%s: must be a mapping with keys interval: and retention: (e.g. \"interval: 24h\"), not %s", kv.path, kindName(kv.val))
		return
	}
	for _, e := range p.pairs(kv.val, kv.path) {
		switch e.key {
		case "interval":
			s.Interval = p.positiveDuration(e)
		case "retention":
			s.Retention = p.positiveDuration(e)
		default:
			p.unknown(e, kv.path, snapshotKeys, "", nil)
		}
	}
}

// retention parses the "retention" mapping.
func (p *parser) retention(kv pair, r *Retention) {
	if isNull(kv.val) {
		return
	}
	if kv.val.Kind != yaml.MappingNode {
		hint := ""
		if kv.val.Kind == yaml.ScalarNode {
			hint = "; to keep snapshots for a period use snapshot.retention"
		}
		p.errorf(kv.line, "%s: must be a mapping with the key enabled: (e.g. \"enabled: false\"), not %s%s", kv.path, kindName(kv.val), hint)
		return
	}
	for _, e := range p.pairs(kv.val, kv.path) {
		switch e.key {
		case "enabled":
			r.Enabled = p.optBoolean(e)
		default:
			p.unknown(e, kv.path, retentionKeys, "", nil)
		}
	}
}
