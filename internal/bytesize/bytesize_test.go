package bytesize

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"5MB": 5_000_000, "5MiB": 5 << 20, "1048576": 1 << 20, "2 gib": 2 << 30, "1TB": 1e12, "2 tib": 2 << 40,
		"10 b": 10, " 2GB ": 2_000_000_000, "8388607TiB": 8388607 << 40,
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	// A single letter is not a unit: 64k could be 64000 or 65536 bytes.
	for in, kind := range map[string]error{
		"": ErrSyntax, "MB": ErrSyntax, "lots": ErrSyntax, "0": ErrNotPositive, "0GB": ErrNotPositive,
		"-5MB": ErrNotPositive, "5XB": ErrUnit, "64k": ErrUnit, "512M": ErrUnit, "1.5GB": ErrFraction,
		"9999999TB": ErrTooLarge, "99999999999999999999": ErrTooLarge,
	} {
		_, err := Parse(in)
		var e *Error
		if !errors.Is(err, kind) || !errors.As(err, &e) || e.Value != in {
			t.Errorf("Parse(%q): %v; want %v", in, err, kind)
		}
	}
}
