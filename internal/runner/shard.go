package runner

import (
	"fmt"
	"strconv"
	"strings"
)

// Shard is one of Count slices of a suite (--shard K/N), so that a CI
// matrix or a batch scheduler spreads one suite over Count machines. The
// zero Shard is the whole suite.
type Shard struct {
	Index int // 1-based: K
	Count int // N
}

// ParseShard reads "K/N" with 1 <= K <= N.
func ParseShard(s string) (Shard, error) {
	k, n, ok := strings.Cut(s, "/")
	if ok {
		ki, err1 := strconv.Atoi(strings.TrimSpace(k))
		ni, err2 := strconv.Atoi(strings.TrimSpace(n))
		if err1 == nil && err2 == nil && ni >= 1 && ki >= 1 && ki <= ni {
			return Shard{Index: ki, Count: ni}, nil
		}
	}
	return Shard{}, fmt.Errorf("invalid shard %q: want K/N with 1 <= K <= N, e.g. 2/4", s)
}

// Select returns the shard's files: every Count-th file of the sorted list,
// starting at the Index-th. Every machine that discovers the same tree gets
// the same list, the shards cover it exactly once, and their sizes differ by
// at most one file.
func (s Shard) Select(files []string) []string {
	if s.Count <= 1 {
		return files
	}
	var mine []string
	for i, f := range files {
		if i%s.Count == s.Index-1 {
			mine = append(mine, f)
		}
	}
	return mine
}
