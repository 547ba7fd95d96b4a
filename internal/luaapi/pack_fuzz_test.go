package luaapi

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzPackFormats decodes arbitrary data with arbitrary formats and
// encodes the values back: every value unpack gives, pack must take, and
// give the same bytes (64-bit values beyond 2^53 travel as strings, so
// they stay exact).
func FuzzPackFormats(f *testing.F) {
	f.Add("u8 i8 u16 i16 u32 i32 u64 i64", []byte("\xff\x80\xff\xff\x00\x80\xff\xff\xff\xff\x00\x00\x00\x80\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x80"))
	f.Add("u64", []byte("\x01\x00\x00\x00\x00\x00\x20\x00"))
	f.Add("i64 i64", []byte("\x01\x00\x00\x00\x00\x00\x20\x80\xff\xff\xff\xff\xff\xff\xdf\xff"))
	f.Add("q32", []byte("abcd"))
	f.Add("", []byte{})
	f.Fuzz(func(t *testing.T, format string, data []byte) {
		var types []packType
		for _, name := range strings.Fields(format) {
			p, ok := packTypes[name]
			if !ok {
				return // checkFormat refuses it
			}
			types = append(types, p)
		}
		off := 0
		var out []byte
		for _, p := range types {
			if off+p.size > len(data) {
				return // unpack refuses short data
			}
			v, err := toIntVal(p.get(data[off : off+p.size]))
			if err != nil {
				t.Fatalf("%s: unpack gave a value pack refuses: %v", p.name, err)
			}
			if err := p.check(v); err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
			out = p.put(out, v)
			off += p.size
		}
		if !bytes.Equal(out, data[:off]) {
			t.Fatalf("format %q: %x packs back as %x", format, data[:off], out)
		}
	})
}

// FuzzIntegerStrings feeds arbitrary strings where an integer is
// expected (pack values and syscall arguments beyond 2^53).
func FuzzIntegerStrings(f *testing.F) {
	for _, s := range []string{"0xffffffffffffffff", "-9223372036854775808", "18446744073709551616", "-0", "+7", " 42 ", "0x", "--1", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseIntString(s)
		if err != nil {
			return
		}
		if v.neg && v.mag > 1<<63 {
			t.Fatalf("%q parsed to -%d, below -2^63", s, v.mag)
		}
		back, err := parseIntString(v.String())
		if err != nil || back != v {
			t.Fatalf("%q -> %v -> %v, %v", s, v, back, err)
		}
	})
}
