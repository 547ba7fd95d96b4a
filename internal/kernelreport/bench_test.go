package kernelreport

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkDetector measures the detector on 10 MB of console text shaped
// like a long test run: ordinary kernel and program lines with a report
// every few thousand lines. A console under emulation delivers 1 to 5 MB/s,
// so the detector should take well under 1% of a core at that rate.
func BenchmarkDetector(b *testing.B) {
	boot := strings.Split(readSample(b, "boot.log"), "\n")
	var reports [][]string
	for _, name := range []string{"warning.log", "kasan_uaf.log", "hung_task.log", "lockdep_circular.log", "null_deref.log"} {
		reports = append(reports, strings.Split(readSample(b, name), "\n"))
	}
	const size = 10 << 20
	var lines []string
	n, total := 0, 0
	for total < size {
		var l string
		if n%3000 == 2999 {
			for _, r := range reports[(n/3000)%len(reports)] {
				lines = append(lines, r)
				total += len(r) + 1
			}
		}
		l = boot[n%len(boot)]
		lines = append(lines, l)
		total += len(l) + 1
		n++
	}
	found := 0
	d := NewDetector(func(Report) { found++ })
	now := time.Now()
	b.SetBytes(int64(total))
	b.ResetTimer()
	for range b.N {
		found = 0
		for _, l := range lines {
			d.Line(l, now)
		}
		d.Flush(now)
	}
	b.StopTimer()
	if want := n / 3000 * 6 / 5; found < want {
		b.Fatalf("found %d reports, want at least %d", found, want)
	}
}
