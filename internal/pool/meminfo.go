package pool

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// memInfo is what auto mode needs from /proc/meminfo, in MiB.
type memInfo struct {
	availMiB int
	totalMiB int
}

func readMeminfo() (memInfo, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return memInfo{}, fmt.Errorf("pool: %w", err)
	}
	return parseMeminfo(data)
}

// parseMeminfo reads the MemTotal and MemAvailable lines ("MemAvailable:
// 24341048 kB").
func parseMeminfo(data []byte) (memInfo, error) {
	var info memInfo
	var haveAvail, haveTotal bool
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int
		switch string(key) {
		case "MemAvailable":
			dst, haveAvail = &info.availMiB, true
		case "MemTotal":
			dst, haveTotal = &info.totalMiB, true
		default:
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) == 0 {
			return memInfo{}, fmt.Errorf("pool: /proc/meminfo: empty %s", key)
		}
		kb, err := strconv.ParseInt(string(fields[0]), 10, 64)
		if err != nil {
			return memInfo{}, fmt.Errorf("pool: /proc/meminfo: %s: %w", key, err)
		}
		*dst = int(kb / 1024)
	}
	if !haveAvail || !haveTotal {
		return memInfo{}, fmt.Errorf("pool: /proc/meminfo has no MemAvailable or MemTotal")
	}
	return info, nil
}
