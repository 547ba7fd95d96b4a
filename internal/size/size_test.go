package size

import "testing"

func TestParseMiB(t *testing.T) {
	for in, want := range map[string]int{
		"512": 512, "512M": 512, "512m": 512, "512MB": 512, "512MiB": 512,
		"4G": 4096, "1.5G": 1536, "2gib": 2048, "1T": 1 << 20, " 64M ": 64,
		"2048K": 2, "1K": 1, "1536KB": 2, "0": 0, "0.5": 1,
	} {
		if got, err := ParseMiB(in); err != nil || got != want {
			t.Errorf("ParseMiB(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "G", "abc", "-1", "-1G", "512B", "B", "1e30G", "NaN", "Inf", "lots", "2P"} {
		if got, err := ParseMiB(in); err == nil {
			t.Errorf("ParseMiB(%q) = %d, want an error", in, got)
		}
	}
}
