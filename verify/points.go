package verify

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/superfly/ltx"

	"github.com/walship/walship/restore"
)

// outcome is what planning a restore to one restore point gave.
type outcome struct {
	txid    ltx.TXID
	ok      bool
	culprit *checked // the file that breaks the restore, when one does
	reason  string   // why the restore would fail
}

// checkRestorePoints plans a restore to every restore point with restore's
// own planner, from the listing already read, and checks that each plan's
// files are sound and chain by their checksums. Points that no restore
// reaches are reported as ranges. It returns the fix of each file no restore
// can use, which depends on whether the other files hold its TXIDs.
func (a *analysis) checkRestorePoints() map[*checked]string {
	fixes := make(map[*checked]string)
	points := a.restorePoints()
	if len(points) == 0 {
		a.r.add(Problem{Kind: KindUnreachable, Object: "replica",
			Message: "no file starts at TXID 1: there is no snapshot a restore could start from",
			Fix:     fixReplicate})
		for _, f := range a.bad {
			fixes[f] = fixReplicate
		}
		return fixes
	}
	all := restore.NewListing(a.r.Replica, a.infos(func(*checked) bool { return true }))
	outcomes := make([]outcome, len(points))
	for i, txid := range points {
		outcomes[i] = a.plan(all, txid)
	}
	// Where the files no restore can use are the trouble, would the others
	// do? That decides between "delete it" and "it is lost".
	sound := restore.NewListing(a.r.Replica, a.infos((*checked).sound))
	reachableWithout := func(txid ltx.TXID) bool { return a.plan(sound, txid).ok }

	a.r.LatestRestorable = outcomes[len(outcomes)-1].ok
	for _, o := range outcomes {
		if !o.ok {
			a.r.UnreachablePoints++
			continue
		}
		a.r.RestorePoints++
		if a.r.OldestRestorable == nil {
			a.r.OldestRestorable = a.point(o.txid)
		}
	}
	for _, g := range groupUnreachable(outcomes) {
		a.r.add(a.unreachable(g, reachableWithout))
	}
	for _, f := range a.bad {
		fixes[f] = a.badFileFix(f, outcomes, reachableWithout)
	}
	return fixes
}

// restorePoints returns, in order, every TXID at which a file of some level
// ends, from the oldest snapshot (the oldest file starting at TXID 1) on;
// nil when there is no snapshot.
func (a *analysis) restorePoints() []ltx.TXID {
	var oldest ltx.TXID
	for _, f := range a.present {
		if f.info.MinTXID == 1 && (oldest == 0 || f.info.MaxTXID < oldest) {
			oldest = f.info.MaxTXID
		}
	}
	if oldest == 0 {
		return nil
	}
	var points []ltx.TXID
	for _, f := range a.present {
		if f.info.MaxTXID >= oldest {
			points = append(points, f.info.MaxTXID)
		}
	}
	slices.Sort(points)
	return slices.Compact(points)
}

// infos returns the listed files that keep says to.
func (a *analysis) infos(keep func(*checked) bool) []*ltx.FileInfo {
	var out []*ltx.FileInfo
	for _, f := range a.present {
		if keep(f) {
			out = append(out, f.info)
		}
	}
	return out
}

// plan plans a restore to exactly txid from l and checks the plan as a
// restore would find it: every file sound, and the chain unbroken.
func (a *analysis) plan(l *restore.Listing, txid ltx.TXID) outcome {
	o := outcome{txid: txid}
	plan, err := l.Plan(restore.Target{TXID: txid})
	if err != nil {
		o.reason = strings.TrimPrefix(err.Error(), "replica "+a.r.Replica+": ")
		return o
	}
	headers := make([]ltx.Header, len(plan.Files))
	trailers := make([]ltx.Trailer, len(plan.Files))
	for i, info := range plan.Files {
		f := a.byInfo[info]
		if f.bad != nil {
			o.culprit = f
			o.reason = fmt.Sprintf("a restore reads %s, which %s", f.name(), unusable(f.bad.Kind))
			return o
		}
		headers[i], trailers[i] = f.hdr, f.trailer
	}
	full := func(i int) bool { return a.byInfo[plan.Files[i]].full }
	if err := restore.CheckChain(plan.Files, headers, trailers, full); err != nil {
		var ce *restore.ChainError
		if errors.As(err, &ce) {
			o.culprit = a.byInfo[ce.File]
		}
		o.reason = "a restore would stop at " + err.Error()
		return o
	}
	o.ok = true
	return o
}

// groupUnreachable groups unreachable points that follow each other among
// the restore points and fail for the same file (or, without one, for the
// planner's reasons).
func groupUnreachable(outcomes []outcome) [][]outcome {
	var groups [][]outcome
	for i, o := range outcomes {
		if o.ok {
			continue
		}
		if n := len(groups); n > 0 && i > 0 && !outcomes[i-1].ok && groups[n-1][0].culprit == o.culprit {
			groups[n-1] = append(groups[n-1], o)
			continue
		}
		groups = append(groups, []outcome{o})
	}
	return groups
}

// unreachable describes a range of restore points no restore reaches.
func (a *analysis) unreachable(g []outcome, reachableWithout func(ltx.TXID) bool) Problem {
	first, last := g[0], g[len(g)-1]
	p := Problem{Kind: KindUnreachable, Object: "replica"}
	if first.culprit != nil {
		p.Object, p.File = first.culprit.name(), refOf(first.culprit.info)
	}
	if len(g) == 1 {
		p.Message = fmt.Sprintf("restore point TXID %s cannot be restored: %s", first.txid, first.reason)
	} else {
		p.Message = fmt.Sprintf("%d restore points, TXIDs %s to %s, cannot be restored: %s", len(g), first.txid, last.txid, first.reason)
	}
	switch {
	case first.culprit != nil && first.culprit.bad != nil && all(g, reachableWithout):
		p.Fix = fmt.Sprintf("delete %s (see its own problem): restores then read the other files that hold its TXIDs", first.culprit.name())
	case first.culprit != nil && first.culprit.bad == nil:
		p.Fix = fixHistories
	default:
		p.Fix = "these restore points are lost from this replica: " + fixReplicate
	}
	return p
}

// badFileFix says what to do about a file no restore can use: delete it when
// the other files hold its TXIDs, and say which restore points are lost when
// it was their only copy.
func (a *analysis) badFileFix(f *checked, outcomes []outcome, reachableWithout func(ltx.TXID) bool) string {
	var blocked, lost []ltx.TXID
	for _, o := range outcomes {
		if o.culprit != f {
			continue
		}
		blocked = append(blocked, o.txid)
		if !reachableWithout(o.txid) {
			lost = append(lost, o.txid)
		}
	}
	switch {
	case len(blocked) == 0:
		return fmt.Sprintf("delete %s: other files hold its TXIDs, so no restore needs it", f.name())
	case len(lost) == 0:
		return fmt.Sprintf("delete %s: restores then read the other files that hold its TXIDs, and %s restorable again", f.name(), describePoints(blocked, "becomes", "become"))
	default:
		return fmt.Sprintf("no other usable file holds TXIDs %s-%s: %s lost from this replica. %s. Deleting %s then loses nothing more: it is the only copy of those restore points, but no restore can use it; keep it if you want to find out what damaged it",
			f.info.MinTXID, f.info.MaxTXID, describePoints(lost, "is", "are"), capitalize(fixReplicate), f.name())
	}
}

// unusable says why a restore cannot use a file with a problem of kind k.
func unusable(k Kind) string {
	switch k {
	case KindTruncated:
		return "is truncated"
	case KindName:
		return "is not the file its name says"
	default:
		return "is corrupt"
	}
}

// describePoints names restore points: "restore point TXID x is", or
// "3 restore points, TXIDs x to y, are".
func describePoints(txids []ltx.TXID, one, many string) string {
	if len(txids) == 1 {
		return fmt.Sprintf("restore point TXID %s %s", txids[0], one)
	}
	return fmt.Sprintf("%d restore points, TXIDs %s to %s, %s", len(txids), txids[0], txids[len(txids)-1], many)
}

func all(g []outcome, ok func(ltx.TXID) bool) bool {
	for _, o := range g {
		if !ok(o.txid) {
			return false
		}
	}
	return true
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
