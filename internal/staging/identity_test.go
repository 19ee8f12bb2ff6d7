package staging

import (
	"strings"
	"testing"
)

// SetIdentity gives the directory the identity Open then reads, refuses
// one walship did not write, and refuses while a process holds the
// directory, unless the identity is already that one.
func TestSetIdentity(t *testing.T) {
	dir := t.TempDir() + "/staging"
	const id = "0123456789abcdef0123456789abcdef"
	if err := SetIdentity(dir, "short"); err == nil {
		t.Fatal("SetIdentity accepted an identity walship does not write")
	}
	if err := SetIdentity(dir, id); err != nil {
		t.Fatal(err)
	}
	d := New(dir, nil)
	if err := d.Open(); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Identity() != id {
		t.Fatalf("identity %q after SetIdentity(%q)", d.Identity(), id)
	}
	if err := SetIdentity(dir, id); err != nil {
		t.Fatalf("the same identity while the directory is open: %v", err)
	}
	other := strings.Repeat("f", 32)
	if err := SetIdentity(dir, other); err == nil || !strings.Contains(err.Error(), "already being replicated") {
		t.Fatalf("another identity while the directory is open: %v; want the lock's refusal", err)
	}
}
