// Package bytesize parses byte sizes as operators write them in configs and
// URLs: a whole number of bytes, or a whole number and a unit, such as
// 512MB or 1 GiB.
package bytesize

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Help lists the accepted forms, for messages.
const Help = "use a whole number of bytes or a number with a unit such as 512MB or 1GiB; units: B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB, TiB (powers of 1024)"

// units maps lower-case units to their number of bytes.
var units = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// form is a whole number and an optional unit, optionally apart.
var form = regexp.MustCompile(`^([0-9]+)\s*([A-Za-z]*)$`)

// Kinds of error of Parse.
var (
	// ErrNotPositive: the size is zero or negative.
	ErrNotPositive = errors.New("size must be greater than 0")
	// ErrTooLarge: the size does not fit in an int64.
	ErrTooLarge = errors.New("size is too large")
	// ErrFraction: the number is not whole.
	ErrFraction = errors.New("write a whole number, with a smaller unit if needed (e.g. 1536MiB rather than 1.5GiB)")
	// ErrUnit: the unit is not one of Help's.
	ErrUnit = errors.New("unknown unit")
	// ErrSyntax: anything else.
	ErrSyntax = errors.New("not a size")
)

// An Error is a value that Parse rejected. It unwraps to one of the Err
// values.
type Error struct {
	Value string // as given
	Unit  string // the unit, for ErrUnit
	Err   error
}

func (e *Error) Error() string {
	switch e.Err {
	case ErrUnit:
		return fmt.Sprintf("%q: unknown unit %q (%s)", e.Value, e.Unit, Help)
	case ErrTooLarge:
		return fmt.Sprintf("%q is too large (at most %d bytes)", e.Value, int64(math.MaxInt64))
	case ErrSyntax:
		return fmt.Sprintf("%q is not a size (%s)", e.Value, Help)
	}
	return fmt.Sprintf("%q: %v", e.Value, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Parse parses a size greater than 0: a whole number with an optional unit
// (see Help), in any letter case, optionally separated by spaces. Its
// errors are *Error.
func Parse(s string) (int64, error) {
	fail := func(err error, unit string) (int64, error) { return 0, &Error{Value: s, Unit: unit, Err: err} }
	t := strings.TrimSpace(s)
	m := form.FindStringSubmatch(t)
	if m == nil {
		switch {
		case strings.HasPrefix(t, "-"):
			return fail(ErrNotPositive, "")
		case strings.ContainsAny(t, ".,"):
			return fail(ErrFraction, "")
		}
		return fail(ErrSyntax, "")
	}
	mult, ok := units[strings.ToLower(m[2])]
	if !ok {
		return fail(ErrUnit, m[2])
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return fail(ErrTooLarge, "")
	}
	if n == 0 {
		return fail(ErrNotPositive, "")
	}
	return n * mult, nil
}
