package pool

import "testing"

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int
	}{
		{"512", 512},
		{"512M", 512},
		{"512m", 512},
		{"512MB", 512},
		{"512MiB", 512},
		{"4G", 4096},
		{"1.5G", 1536},
		{"2gib", 2048},
		{"1T", 1 << 20},
		{" 64M ", 64},
		{"0", 0},
	}
	for _, tt := range good {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "M", "abc", "-1", "512K", "512B", "0.5M", "1e30G", "NaN", "Inf"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}
