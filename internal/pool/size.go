package pool

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits are the suffixes ParseSize knows, longest first among those
// sharing a letter, in MiB.
var sizeUnits = []struct {
	suffix string
	mib    float64
}{
	{"TIB", 1 << 20}, {"TB", 1 << 20}, {"T", 1 << 20},
	{"GIB", 1 << 10}, {"GB", 1 << 10}, {"G", 1 << 10},
	{"MIB", 1}, {"MB", 1}, {"M", 1},
}

// ParseSize reads a memory size the way users write it everywhere in
// Provium (vm:boot's memory, --mem): "512M", "1G", "1.5G", or a plain
// number of MiB. Suffixes are case-insensitive, may be spelled "MB" or
// "MiB", and are all powers of 1024. The result is in MiB.
func ParseSize(s string) (int, error) {
	num := strings.ToUpper(strings.TrimSpace(s))
	unit := 1.0
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, unit = strings.TrimSpace(rest), u.mib
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) {
		return 0, fmt.Errorf("invalid size %q: want e.g. 512M, 4G or a number of MiB", s)
	}
	mib := v * unit
	if mib != math.Trunc(mib) || mib > math.MaxInt32 {
		return 0, fmt.Errorf("invalid size %q: not a whole number of MiB", s)
	}
	return int(mib), nil
}
