package main

import (
	"errors"
	"math"
	"testing"
)

// evalIn evaluates the macro "X" among defs.
func evalIn(defs map[string]string) (int64, error) {
	e := expander{body: func(name string) (string, bool, bool) {
		if name == "F" {
			return "", true, true // a function-like macro
		}
		b, ok := defs[name]
		return b, ok, false
	}}
	v, err := e.evalMacro("X")
	if err != nil {
		return 0, err
	}
	return v.Int64()
}

func TestEval(t *testing.T) {
	for _, tc := range []struct {
		name string
		defs map[string]string
		want int64
	}{
		{"decimal", map[string]string{"X": "42"}, 42},
		{"octal", map[string]string{"X": "00200000"}, 0o200000},
		{"zero", map[string]string{"X": "0"}, 0},
		{"hex", map[string]string{"X": "0x4C82"}, 0x4C82},
		{"suffixes", map[string]string{"X": "(1UL + 2u + 3L + 4ll + 5ULL + 6LU)"}, 21},
		{"negative", map[string]string{"X": "-100"}, -100},
		{"or", map[string]string{"X": "(A | B)", "A": "0x100", "B": "0x1"}, 0x101},
		{"textual expansion", map[string]string{"X": "A * 3", "A": "1 + 2"}, 7},
		{"precedence", map[string]string{"X": "1 + 2 << 3 | 1"}, 25},
		{"and not", map[string]string{"X": "(0xff & ~0x0f)"}, 0xf0},
		{"unsigned not", map[string]string{"X": "~0U"}, math.MaxUint32},
		{"signed not", map[string]string{"X": "~0"}, -1},
		{"long not", map[string]string{"X": "~0L"}, -1},
		{"wide shift", map[string]string{"X": "(1ULL << 33)"}, 1 << 33},
		{"int shift into sign bit", map[string]string{"X": "(1<<31)"}, math.MinInt32},
		{"hex literal is unsigned int", map[string]string{"X": "0x80000000"}, 0x80000000},
		{"decimal literal is long", map[string]string{"X": "2147483648"}, 2147483648},
		{"unsigned wraps", map[string]string{"X": "0U - 1"}, math.MaxUint32},
		{"int plus unsigned", map[string]string{"X": "-1 + 0U"}, math.MaxUint32},
		{"long plus unsigned int", map[string]string{"X": "-1L + 1U"}, 0},
		{"division truncates", map[string]string{"X": "-7 / 2"}, -3},
		{"remainder", map[string]string{"X": "-7 % 2"}, -1},
		{"arithmetic right shift", map[string]string{"X": "-8 >> 1"}, -4},
		{"xor", map[string]string{"X": "6 ^ 3"}, 5},
		{"not", map[string]string{"X": "!0 + !5"}, 1},
		{"nested parens", map[string]string{"X": "((((3))))"}, 3},
		{"self-reference is not expanded", map[string]string{"X": "Y", "Y": "Z", "Z": "4"}, 4},
	} {
		got, err := evalIn(tc.defs)
		if err != nil || got != tc.want {
			t.Errorf("%s: %v = %d, %v; want %d", tc.name, tc.defs, got, err, tc.want)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		defs map[string]string
	}{
		{"unknown identifier", map[string]string{"X": "A + 1"}},
		{"cast", map[string]string{"X": "((unsigned long)-1)"}},
		{"function-like macro", map[string]string{"X": "F(1)"}},
		{"recursive macro", map[string]string{"X": "X + 1"}},
		{"empty", map[string]string{"X": ""}},
		{"string", map[string]string{"X": `"abc"`}},
		{"char literal", map[string]string{"X": `'a'`}},
		{"comparison", map[string]string{"X": "1 < 2"}},
		{"logical and", map[string]string{"X": "1 && 2"}},
		{"ternary", map[string]string{"X": "1 ? 2 : 3"}},
		{"floating point", map[string]string{"X": "1.5"}},
		{"bad octal", map[string]string{"X": "09"}},
		{"bad suffix", map[string]string{"X": "1lL"}},
		{"bad suffix letters", map[string]string{"X": "1uu"}},
		{"too large", map[string]string{"X": "0x1ffffffffffffffff"}},
		{"signed overflow", map[string]string{"X": "2147483647 + 1 + 9223372036854775807L"}},
		{"int overflow", map[string]string{"X": "2147483647 + 1"}},
		{"multiplication overflow", map[string]string{"X": "65536 * 65536"}},
		{"shift too far", map[string]string{"X": "1 << 32"}},
		{"negative shift", map[string]string{"X": "1 << -1"}},
		{"division by zero", map[string]string{"X": "1 / 0"}},
		{"unbalanced", map[string]string{"X": "(1 + 2"}},
		{"trailing", map[string]string{"X": "1 2"}},
		{"unsigned long above int64", map[string]string{"X": "~0UL"}},
		{"int plus unsigned long is above int64", map[string]string{"X": "-1 + 0UL"}},
	} {
		got, err := evalIn(tc.defs)
		if !errors.Is(err, errExpr) {
			t.Errorf("%s: %v = %d, %v; want an error", tc.name, tc.defs, got, err)
		}
	}
}
