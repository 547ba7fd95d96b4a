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
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, fmt.Errorf("pool: %w", err)
	}
	kb, err := parseSmapsRollup(data)
	if err != nil {
		return 0, fmt.Errorf("pool: /proc/%d/smaps_rollup: %w", pid, err)
	}
	return int((kb + 1023) / 1024), nil
}

// parseSmapsRollup sums the Private_Dirty and Swap lines, in kB.
func parseSmapsRollup(data []byte) (int64, error) {
	var total int64
	seen := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(key) != "Private_Dirty" && string(key) != "Swap" {
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
		seen = seen || string(key) == "Private_Dirty"
	}
	if !seen {
		return 0, fmt.Errorf("no Private_Dirty line")
	}
	return total, nil
}
