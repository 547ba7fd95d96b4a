// Package size reads memory sizes the way users write them everywhere in
// Provium — vm:boot's memory, --mem, PROVIUM_FIXTURE_CACHE_MAX: "512M",
// "1G", "1.5G", "2048K" or a plain number of MiB.
package size

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// units are the suffixes ParseMiB knows, in MiB; each may also be spelled
// with "B" or "iB" after it, and all are powers of 1024.
var units = map[byte]float64{'K': 1.0 / 1024, 'M': 1, 'G': 1 << 10, 'T': 1 << 20}

// maxMiB bounds a size: a petabyte is no machine's memory, and the result
// must fit an int everywhere.
const maxMiB = 1 << 30

// ParseMiB returns the size s in MiB, rounded up to a whole MiB: a VM gets
// at least what was asked for. Suffixes are case-insensitive; a number
// without one is in MiB.
func ParseMiB(s string) (int, error) {
	num := strings.ToUpper(strings.TrimSpace(s))
	// "MiB" and "MB" are "M"; a "B" after a digit is no unit (bytes are
	// not a size anyone boots).
	if n := len(num); n > 1 && num[n-1] == 'B' {
		if trimmed := strings.TrimSuffix(num[:n-1], "I"); len(trimmed) > 0 && units[trimmed[len(trimmed)-1]] != 0 {
			num = trimmed
		}
	}
	unit := 1.0
	if n := len(num); n > 0 {
		if u, ok := units[num[n-1]]; ok {
			num, unit = strings.TrimSpace(num[:n-1]), u
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsNaN(v) || v*unit > maxMiB {
		return 0, fmt.Errorf("invalid size %q: want e.g. 512M, 1G or a number of MiB", s)
	}
	return MiB(v * unit)
}

// MiB rounds a number of MiB up to a whole one, rejecting what is no size.
func MiB(v float64) (int, error) {
	if v < 0 || math.IsNaN(v) || v > maxMiB {
		return 0, fmt.Errorf("invalid size %v MiB", v)
	}
	return int(math.Ceil(v)), nil
}
