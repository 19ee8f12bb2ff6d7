package storage

import (
	"testing"

	"github.com/superfly/ltx"
)

// FuzzParseFileName: any name either is rejected or names a valid TXID
// range that formats back to a name with the same meaning.
func FuzzParseFileName(f *testing.F) {
	for _, s := range []string{
		"0000000000000001-0000000000000001.ltx", "000000000000000a-00000000000000ff.ltx",
		"ltx/0/0000000000000001-0000000000000002.ltx", ".0000000000000001-0000000000000001.ltx.tmp-1",
		"0000000000000002-0000000000000001.ltx", "0000000000000000-0000000000000001.ltx", "x.ltx", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		minTXID, maxTXID, ok := ParseFileName(name)
		if !ok {
			return
		}
		if minTXID == 0 || maxTXID < minTXID {
			t.Fatalf("%q parsed to the empty range %s-%s", name, minTXID, maxTXID)
		}
		again, againMax, ok := ParseFileName(ltx.FormatFilename(minTXID, maxTXID))
		if !ok || again != minTXID || againMax != maxTXID {
			t.Fatalf("%q: %s-%s does not round-trip", name, minTXID, maxTXID)
		}
	})
}
