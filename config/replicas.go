package config

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/walship/walship/storage/backend"
	"github.com/walship/walship/storage/crypt"
)

// replicaList parses "replicas".
func (p *parser) replicaList(kv pair) []*Replica {
	if kv.val.Kind != yaml.SequenceNode {
		p.errorf(kv.line, "%s: must be a list of replicas (each entry starting with \"- url: ...\" or \"- path: ...\"), not %s", kv.path, kindName(kv.val))
		return nil
	}
	var out []*Replica
	for i, item := range kv.val.Content {
		if r := p.replica(resolve(item), fmt.Sprintf("%s[%d]", kv.path, i)); r != nil {
			out = append(out, r)
		}
	}
	return out
}

// replica parses one replica mapping whose key path is where.
func (p *parser) replica(n *yaml.Node, where string) *Replica {
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s: a replica must be a mapping with a url or a path (e.g. \"url: file:///backups/app\"), not %s", where, kindName(n))
		return nil
	}
	r := &Replica{Line: n.Line}
	var urlLine, pathLine int
	var extra []pair
	for _, kv := range p.pairs(n, where) {
		switch kv.key {
		case "name":
			r.Name = p.str(kv)
		case "type":
			r.Type = p.str(kv)
		case "url":
			r.URL = p.str(kv)
			urlLine = kv.line
		case "path":
			r.Path = p.str(kv)
			pathLine = kv.line
		case "audit-interval":
			r.AuditInterval = p.duration(kv)
		case "litestream-compatible":
			r.LitestreamCompatible = p.optBoolean(kv)
		default:
			if !p.replicaSetting(r, kv) {
				p.unknown(kv, where, replicaKeys, "backend options and Litestream's keys", replicaExtraSettingKeys())
				continue
			}
			if slices.Contains(replicaExtraKeys, kv.key) {
				extra = append(extra, kv)
			}
			if kv.key == "sync-interval" {
				if p.replicaSyncIntervals == nil {
					p.replicaSyncIntervals = map[*Replica]pair{}
				}
				p.replicaSyncIntervals[r] = kv
			}
		}
	}
	switch {
	case r.URL == "" && r.Path == "" && (r.Type == "" || strings.EqualFold(r.Type, "file")):
		// Other types may name their destination by keys alone
		// (type: nats with bucket:, type: s3 with bucket:).
		p.errorf(n.Line, "%s: replica has neither url nor path; set one (e.g. \"url: file:///backups/app\" or \"path: /backups/app\")", where)
	case r.URL != "" && r.Path != "":
		p.errorf(max(urlLine, pathLine), "%s: replica has both url (line %d) and path (line %d); set only one", where, urlLine, pathLine)
	}
	p.backendKeys(r, extra)
	return r
}

// encryptionKey parses "encryption-key". The error never shows the value.
func (p *parser) encryptionKey(kv pair) *crypt.Key {
	v := p.str(kv)
	if v == "" {
		p.errorf(kv.line, "%s: is empty (if it names an environment variable, such as ${WALSHIP_ENCRYPTION_KEY}, that variable is unset): set the key, 64 hexadecimal characters, or use encryption-key-path", kv.path)
		return nil
	}
	k, err := crypt.ParseKey([]byte(v))
	if err != nil {
		p.errorf(kv.line, "%s: %v", kv.path, err)
		return nil
	}
	return &k
}

// checkEncryption reports a replica's encryption settings that contradict
// each other, once the top level's were applied.
func (p *parser) checkEncryption(r *Replica, where string) {
	switch {
	case r.EncryptionKeyPath != "" && r.EncryptionKey != nil:
		p.errorf(r.Line, "%s: sets both encryption-key and encryption-key-path; set only one", where)
	case len(r.EncryptionOldKeyPaths) > 0 && r.EncryptionKeyPath == "" && r.EncryptionKey == nil:
		p.errorf(r.Line, "%s: sets encryption-old-key-paths without encryption-key-path or encryption-key, the key that encrypts what is written from now on", where)
	case r.LitestreamCompatible != nil && *r.LitestreamCompatible && (r.EncryptionKeyPath != "" || r.EncryptionKey != nil):
		p.errorf(r.Line, "%s: sets litestream-compatible and an encryption key: Litestream cannot read encrypted files; give Litestream a replica of its own without encryption, or drop litestream-compatible", where)
	}
}

// replicaSetting parses kv into r if it is a replica setting, one that a
// replica or the top level (for every replica) may set, and reports
// whether it is. Litestream's settings that walship does not act on are
// warned about.
func (p *parser) replicaSetting(r *Replica, kv pair) bool {
	top := r == &p.defaults
	switch {
	case kv.key == "sync-interval":
		r.SyncInterval = p.duration(kv)
	case kv.key == "validation-interval":
		r.ValidationInterval = p.duration(kv)
	case kv.key == "age":
		p.age(kv)
	case kv.key == "encryption-key-path":
		r.EncryptionKeyPath = p.str(kv)
	case kv.key == "encryption-key":
		r.EncryptionKey = p.encryptionKey(kv)
	case kv.key == "encryption-old-key-paths":
		if kv.val.Kind == yaml.SequenceNode {
			r.EncryptionOldKeyPaths = strings.Split(p.strList(kv), ",")
		} else if v := p.str(kv); v != "" {
			r.EncryptionOldKeyPaths = strings.Split(v, ",")
		}
	case ignoredReplicaKeys[kv.key] != "":
		p.ignore(kv, ignoredReplicaKeys[kv.key])
	case top && !slices.Contains(backend.Keys(), kv.key) && backend.IgnoredReason(kv.key) != "":
		// Read by no backend: no replica can take it.
		p.ignore(kv, backend.IgnoredReason(kv.key))
	case slices.Contains(replicaExtraKeys, kv.key):
		if r.Extra == nil {
			r.Extra = map[string]string{}
		}
		if kv.key == "root-cas" && kv.val.Kind == yaml.SequenceNode {
			// Litestream writes NATS's CA files as a list.
			r.Extra[kv.key] = p.strList(kv)
		} else {
			r.Extra[kv.key] = p.str(kv)
		}
	default:
		return false
	}
	return true
}

// backendKeys warns about the backend keys of r that its backend does not
// read: Litestream accepts any replica key on any replica.
func (p *parser) backendKeys(r *Replica, keys []pair) {
	b, ok := backend.Lookup(r.Backend())
	if !ok {
		return // an unknown type is reported when the replica is opened
	}
	for _, kv := range keys {
		switch {
		case slices.Contains(b.Keys, kv.key):
		case b.Ignored[kv.key] != "":
			p.ignore(kv, b.Ignored[kv.key])
		case len(backend.TypesReading(kv.key)) == 0:
			p.ignore(kv, backend.IgnoredReason(kv.key)) // no backend reads it
		default:
			p.warnf(kv.line, kv.path, "has no effect: it applies to %s replicas, not to this %s replica", orList(backend.TypesReading(kv.key)), b.Type())
		}
	}
}

// applyDefaults gives every replica the settings written at the top level
// that it does not set itself and that its backend reads, as Litestream
// does, and warns about those that no replica takes.
func (p *parser) applyDefaults(dbs []*DB) {
	d := &p.defaults
	taken := map[string]bool{}
	for _, db := range dbs {
		for _, r := range db.AllReplicas() {
			if r == nil {
				continue
			}
			if r.SyncInterval == nil && d.SyncInterval != nil {
				r.SyncInterval, taken["sync-interval"] = d.SyncInterval, true
			}
			if r.ValidationInterval == nil && d.ValidationInterval != nil {
				r.ValidationInterval, taken["validation-interval"] = d.ValidationInterval, true
			}
			if r.EncryptionKeyPath == "" && r.EncryptionKey == nil && len(r.EncryptionOldKeyPaths) == 0 {
				r.EncryptionKeyPath, r.EncryptionKey, r.EncryptionOldKeyPaths = d.EncryptionKeyPath, d.EncryptionKey, d.EncryptionOldKeyPaths
			}
			p.checkEncryption(r, fmt.Sprintf("database %s, replica %s", db.Path, r.DisplayName()))
			b, ok := backend.Lookup(r.Backend())
			for k, v := range d.Extra {
				if _, set := r.Extra[k]; set || !ok || !slices.Contains(b.Keys, k) {
					continue
				}
				if r.Extra == nil {
					r.Extra = map[string]string{}
				}
				r.Extra[k], taken[k] = v, true
			}
		}
	}
	for _, kv := range p.defaultKeys {
		if taken[kv.key] || (kv.key != "sync-interval" && kv.key != "validation-interval" && !slices.Contains(backend.Keys(), kv.key)) {
			continue // taken, or already warned about
		}
		if isNull(kv.val) {
			continue
		}
		what := "each replica sets its own"
		if users := backend.TypesReading(kv.key); len(users) > 0 {
			what = fmt.Sprintf("it applies to %s replicas, and each here is of another kind or sets its own", orList(users))
		}
		p.warnf(kv.line, kv.path, "has no effect: a replica setting at the top level is a default for every replica, and none takes it: %s", what)
	}
}

// age parses Litestream's client-side encryption settings, which neither
// Litestream 0.5 nor walship supports: with identities or recipients the
// file is refused, as Litestream refuses it.
func (p *parser) age(kv pair) {
	if kv.val.Kind == yaml.MappingNode {
		for _, e := range p.pairs(kv.val, kv.path) {
			switch e.key {
			case "identities", "recipients":
				if e.val.Kind == yaml.SequenceNode && len(e.val.Content) > 0 || e.val.Kind == yaml.ScalarNode && !isNull(e.val) {
					p.errorf(e.line, "%s: age encryption is not supported (Litestream 0.5 refuses it too, and would otherwise write unencrypted files): "+
						"remove age:, or let the store encrypt (sse-customer-key or sse-kms-key-id on S3)", e.path)
				}
			default:
				p.unknown(e, kv.path, []string{"identities", "recipients"}, "", nil)
			}
		}
	}
	p.ignore(kv, "it lists no identity or recipient (and Litestream 0.5 supports no age encryption)")
}

// orList joins words with commas and a final "and".
func orList(words []string) string {
	if len(words) <= 1 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}
