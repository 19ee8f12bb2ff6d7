package litestream03

import (
	"errors"
	"fmt"
	"time"
)

// errNoOlder is Plan.Older's error when the generation holds no older
// snapshot.
var errNoOlder = errors.New("no older snapshot")

// A Plan is what a restore reads: a snapshot, then the segments of each WAL
// index from the snapshot's on, in order.
type Plan struct {
	Replica    string
	Generation string
	Target     time.Time // the zero time for the latest state
	Snapshot   Snapshot
	// Segments are applied after the snapshot, in order: every segment of
	// each WAL index from the snapshot's on, up to the target.
	Segments []Segment
	// Window holds the segments of the snapshot's own WAL index past the
	// target, when the target lies in that index: they are read, not
	// applied, to check that the snapshot holds none of their changes
	// (see Backup.Restore).
	Window []Segment

	gen *Generation
}

// Objects returns how many objects the plan reads.
func (p *Plan) Objects() int { return 1 + len(p.Segments) + len(p.Window) }

// Size returns the size of the objects the plan reads.
func (p *Plan) Size() int64 {
	n := p.Snapshot.Object.Size
	for _, s := range p.Segments {
		n += s.Object.Size
	}
	for _, s := range p.Window {
		n += s.Object.Size
	}
	return n
}

// eligible reports whether an object written at t may be part of a restore
// to target.
func eligible(t, target time.Time) bool { return target.IsZero() || !t.After(target) }

// Plan chooses what a restore to target (the zero time for the latest
// state) reads: the generation whose newest object written at or before
// target is the newest, its newest snapshot written at or before target,
// and the segments of each WAL index from the snapshot's on for as long as
// they were written at or before target. A WAL index missing from that
// chain, or one that does not start at offset 0, is an error naming it.
// It does no I/O.
func (b *Backup) Plan(target time.Time) (*Plan, error) {
	var g *Generation
	var at time.Time
	for _, gen := range b.Generations {
		t, ok := newestAt(gen, target)
		// Of two generations as new, the later name: they are sorted.
		if ok && (g == nil || !t.Before(at)) {
			g, at = gen, t
		}
	}
	if g == nil {
		first := time.Time{}
		for _, gen := range b.Generations {
			if t, _ := gen.Span(); first.IsZero() || t.Before(first) {
				first = t
			}
		}
		return nil, fmt.Errorf("replica %s: its Litestream v0.3 backup holds nothing written at or before %s: the oldest object was written at %s; restore a later time",
			b.Replica, stamp(target), stamp(first))
	}
	return b.planIn(g, target, maxIndex+1)
}

// newestAt returns the time of g's newest object written at or before
// target.
func newestAt(g *Generation, target time.Time) (time.Time, bool) {
	var at time.Time
	ok := false
	see := func(t time.Time) {
		if eligible(t, target) && (!ok || t.After(at)) {
			at, ok = t, true
		}
	}
	for _, s := range g.Snapshots {
		see(s.Object.ModTime)
	}
	for _, s := range g.Segments {
		see(s.Object.ModTime)
	}
	return at, ok
}

// planIn plans a restore to target in generation g from its newest
// eligible snapshot of an index below below. below is an int64 because
// "no bound" is maxIndex+1, which does not fit a 32-bit int.
func (b *Backup) planIn(g *Generation, target time.Time, below int64) (*Plan, error) {
	p := &Plan{Replica: b.Replica, Generation: g.Name, Target: target, gen: g}
	found := false
	for _, s := range g.Snapshots { // by index
		if int64(s.Index) < below && eligible(s.Object.ModTime, target) {
			p.Snapshot, found = s, true
		}
	}
	if !found {
		return nil, b.noSnapshot(g, target, below)
	}
	i := 0
	for i < len(g.Segments) && g.Segments[i].Index < p.Snapshot.Index {
		i++
	}
	var last *Segment
	for ; i < len(g.Segments) && eligible(g.Segments[i].Object.ModTime, target); i++ {
		s := &g.Segments[i]
		if last == nil || s.Index != last.Index {
			if err := b.checkStart(g, p.Snapshot, last, s); err != nil {
				return nil, err
			}
		}
		p.Segments = append(p.Segments, *s)
		last = s
	}
	if last == nil || last.Index == p.Snapshot.Index {
		for ; i < len(g.Segments) && g.Segments[i].Index == p.Snapshot.Index; i++ {
			p.Window = append(p.Window, g.Segments[i])
		}
	}
	return p, nil
}

// checkStart checks that s, the first segment of its WAL index in a plan,
// starts the index that must follow last (the snapshot's, when last is
// nil), at offset 0.
func (b *Backup) checkStart(g *Generation, snap Snapshot, last, s *Segment) error {
	want, after, at := snap.Index, SnapshotName(g.Name, snap.Index), snap.Object.ModTime
	if last != nil {
		want, after, at = last.Index+1, last.Object.Name, last.Object.ModTime
	}
	switch {
	case s.Index > want:
		return fmt.Errorf("replica %s: generation %s: WAL index %08x is missing (no %s): the backup reaches no further than %s, written at %s; restore that time or an earlier one with -timestamp",
			b.Replica, g.Name, want, SegmentName(g.Name, want, 0), after, stamp(at))
	case s.Offset != 0:
		return fmt.Errorf("replica %s: generation %s: the start of WAL index %08x is missing (no %s; its first segment starts at offset %d): the backup reaches no further than %s, written at %s; restore that time or an earlier one with -timestamp",
			b.Replica, g.Name, s.Index, SegmentName(g.Name, s.Index, 0), s.Offset, after, stamp(at))
	}
	return nil
}

// noSnapshot says why g has no snapshot to restore target from below
// index below.
func (b *Backup) noSnapshot(g *Generation, target time.Time, below int64) error {
	if below <= maxIndex {
		return errNoOlder
	}
	newest := "the newest"
	if !target.IsZero() {
		newest += " at " + stamp(target)
	}
	if len(g.Snapshots) == 0 {
		first, last := g.Span()
		return fmt.Errorf("replica %s: generation %s, %s (written from %s to %s), holds no snapshot: Litestream v0.3 did not finish one, or it was deleted; restore a time before %s with -timestamp to read an older generation",
			b.Replica, g.Name, newest, stamp(first), stamp(last), stamp(first))
	}
	oldest := g.Snapshots[0]
	first, _ := g.Span()
	return fmt.Errorf("replica %s: generation %s, %s, holds no snapshot written by then (its oldest, %s, was written at %s); restore that time or a later one, or one before %s with -timestamp to read an older generation",
		b.Replica, g.Name, newest, SnapshotName(g.Name, oldest.Index), stamp(oldest.Object.ModTime), stamp(first))
}

// Older plans the same target from the newest snapshot of the same
// generation older than p's.
func (p *Plan) Older(b *Backup) (*Plan, error) {
	return b.planIn(p.gen, p.Target, int64(p.Snapshot.Index))
}

// stamp formats a time for messages; the zero time is the latest state.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "the latest state"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
