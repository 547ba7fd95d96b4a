package size

import "testing"

func FuzzParseMiB(f *testing.F) {
	for _, s := range []string{"512", "512M", "1.5G", "2048K", "1T", "64KiB", "0", "-1", "1e3", "NaN", "Inf", " 8 G ", "9999999999T", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseMiB(s)
		if err != nil {
			return
		}
		if n < 0 || n > maxMiB {
			t.Fatalf("ParseMiB(%q) = %d, outside 0..%d", s, n, maxMiB)
		}
		// A size that parses is at least what was asked: rounding is up.
		if m, err := MiB(float64(n)); err != nil || m != n {
			t.Fatalf("MiB(%d) = %d, %v", n, m, err)
		}
	})
}
