package qemu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// niceOf lists the nice value of every thread of pid.
func niceOf(t *testing.T, pid int) []int {
	t.Helper()
	stats, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	var out []int
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue // the thread ended
		}
		// Fields after the command's closing parenthesis; nice is the 19th
		// field of the line, the 17th of these.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		n, err := strconv.Atoi(f[16])
		if err != nil {
			t.Fatalf("%s: %v", st, err)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		t.Fatalf("no threads of %d", pid)
	}
	return out
}

func TestBackgroundThenForeground(t *testing.T) {
	if !CanBackground() {
		t.Skip("this process may not raise a lowered priority (RLIMIT_NICE)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := bootConfig(testKernel(t), newWatcher("never"))
	cfg.Paused, cfg.Background = true, true
	p, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	for _, n := range niceOf(t, p.Pid()) {
		if n != backgroundNice {
			t.Fatalf("a background QEMU's threads are at nice %v, want all %d", niceOf(t, p.Pid()), backgroundNice)
		}
	}
	if err := p.Foreground(); err != nil {
		t.Fatal(err)
	}
	for _, n := range niceOf(t, p.Pid()) {
		if n != 0 {
			t.Fatalf("after Foreground, QEMU's threads are at nice %v, want all 0", niceOf(t, p.Pid()))
		}
	}
	// This process is not lowered by it.
	for _, n := range niceOf(t, os.Getpid()) {
		if n != 0 {
			t.Fatalf("the threads of the process that started it are at nice %v", niceOf(t, os.Getpid()))
		}
	}
}
