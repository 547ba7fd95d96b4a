package pool

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// PrivateDirtyMiB is the memory process pid has written and shares with
// no other process (Private_Dirty plus Swap in /proc/PID/smaps_rollup),
// rounded up to MiB: what a VM resumed from a memory template costs the
// host beyond the pages it shares.
func PrivateDirtyMiB(pid int) (int, error) {
	return rollupMiB(pid, "Private_Dirty", "Swap")
}

// PSSMiB is process pid's proportional set size (Pss plus SwapPss), in
// MiB rounded up: its private pages, and its share of those it shares
// with others. Added up over processes, it is what they cost the host
// together.
func PSSMiB(pid int) (int, error) {
	return rollupMiB(pid, "Pss", "SwapPss")
}

func rollupMiB(pid int, first, more string) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, fmt.Errorf("pool: %w", err)
	}
	kb, err := parseSmapsRollup(data, first, more)
	if err != nil {
		return 0, fmt.Errorf("pool: /proc/%d/smaps_rollup: %w", pid, err)
	}
	return int((kb + 1023) / 1024), nil
}

// parseSmapsRollup sums the first and more lines, in kB; first must be
// there.
func parseSmapsRollup(data []byte, first, more string) (int64, error) {
	var total int64
	seen := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(key) != first && string(key) != more {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) != 2 || string(fields[1]) != "kB" {
			return 0, fmt.Errorf("%s: want a size in kB, got %q", key, rest)
		}
		kb, err := strconv.ParseInt(string(fields[0]), 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("%s: want a size in kB, got %q", key, rest)
		}
		total += kb
		seen = seen || string(key) == first
	}
	if !seen {
		return 0, fmt.Errorf("no %s line", first)
	}
	return total, nil
}
