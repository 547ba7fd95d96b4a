package main

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// This file evaluates the bodies of object-like C macros as integer constant
// expressions, with the types of an LP64 target (int is 32 bits, long and
// long long are 64): both x86_64 and arm64 are LP64. The evaluator is strict:
// a cast, a function-like macro, an unknown identifier, a signed overflow in
// + - * / or an operator outside the supported set is an error, never a
// guess, since a table generated from a guess would be wrong without anyone
// noticing.
//
// Supported: integer literals (decimal, octal, hexadecimal, with U, L and LL
// suffixes), parentheses, unary + - ~ !, binary * / % + - << >> & ^ |, and
// references to other object-like macros, which are expanded as text the way
// the preprocessor does (so "#define A 1+2" makes "A*3" equal 7, not 9).

// errExpr is wrapped by every evaluation failure.
var errExpr = errors.New("cannot evaluate macro")

// cval is a C integer value: a bit pattern of 32 bits (int, unsigned int) or
// 64 bits (long, unsigned long, long long), signed or unsigned.
type cval struct {
	bits     uint64 // two's complement, truncated to the width
	wide     bool   // 64 bits rather than 32
	unsigned bool
}

func (c cval) width() uint {
	if c.wide {
		return 64
	}
	return 32
}

// big returns the mathematical value of c.
func (c cval) big() *big.Int {
	if c.unsigned {
		return new(big.Int).SetUint64(c.bits)
	}
	if c.wide {
		return big.NewInt(int64(c.bits))
	}
	return big.NewInt(int64(int32(uint32(c.bits))))
}

// Int64 returns the value of c, or an error if it does not fit in an int64
// (an unsigned long above math.MaxInt64).
func (c cval) Int64() (int64, error) {
	b := c.big()
	if !b.IsInt64() {
		return 0, fmt.Errorf("value %s does not fit in int64: %w", b, errExpr)
	}
	return b.Int64(), nil
}

// makeVal returns the value v in the given type. An unsigned type wraps
// modulo 2^width, as C defines; a signed type that cannot hold v is an
// overflow, which C leaves undefined and which is therefore an error.
func makeVal(v *big.Int, wide, unsigned bool) (cval, error) {
	t := cval{wide: wide, unsigned: unsigned}
	w := t.width()
	mod := new(big.Int).Lsh(big.NewInt(1), w)
	if unsigned {
		r := new(big.Int).Mod(v, mod) // Mod is Euclidean: never negative
		t.bits = r.Uint64()
		return t, nil
	}
	lo := new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), w-1))
	hi := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), w-1), big.NewInt(1))
	if v.Cmp(lo) < 0 || v.Cmp(hi) > 0 {
		return cval{}, fmt.Errorf("signed overflow: %s does not fit in %s: %w", v, t.typeName(), errExpr)
	}
	t.bits = uint64(v.Int64()) & (math.MaxUint64 >> (64 - w))
	return t, nil
}

func (c cval) typeName() string {
	switch {
	case c.wide && c.unsigned:
		return "unsigned long"
	case c.wide:
		return "long"
	case c.unsigned:
		return "unsigned int"
	}
	return "int"
}

// convert returns c converted to the given type, as C converts integers.
func (c cval) convert(wide, unsigned bool) cval {
	v, err := makeVal(c.big(), wide, unsigned)
	if err != nil {
		// Only a conversion to a narrower signed type can fail, and the
		// usual arithmetic conversions never narrow.
		panic(err)
	}
	return v
}

// common returns the type the usual arithmetic conversions give a and b.
func common(a, b cval) (wide, unsigned bool) {
	switch {
	case a.wide == b.wide:
		return a.wide, a.unsigned || b.unsigned
	case a.wide:
		// long holds every unsigned int, so the wide type wins as it is.
		return true, a.unsigned
	default:
		return true, b.unsigned
	}
}

// parseLiteral parses a C integer literal and gives it the type C11 6.4.4.1
// gives it on an LP64 target.
func parseLiteral(s string) (cval, error) {
	digits := strings.TrimRight(s, "uUlL")
	suffix := strings.ToLower(s[len(digits):])
	var unsignedSuffix, longSuffix bool
	switch suffix {
	case "":
	case "u":
		unsignedSuffix = true
	case "l", "ll":
		longSuffix = true
	case "ul", "lu", "ull", "llu":
		unsignedSuffix, longSuffix = true, true
	default:
		return cval{}, fmt.Errorf("literal %q: bad suffix: %w", s, errExpr)
	}
	if suffix == "ll" || suffix == "ull" || suffix == "llu" {
		// "lL" and "Ll" are not C; only "ll" and "LL" are.
		if l := s[len(s)-len(suffix):]; !strings.Contains(l, "ll") && !strings.Contains(l, "LL") {
			return cval{}, fmt.Errorf("literal %q: bad suffix: %w", s, errExpr)
		}
	}
	base, body := 10, digits
	switch {
	case strings.HasPrefix(digits, "0x") || strings.HasPrefix(digits, "0X"):
		base, body = 16, digits[2:]
	case len(digits) > 1 && digits[0] == '0':
		base, body = 8, digits[1:]
	}
	u, err := strconv.ParseUint(body, base, 64)
	if err != nil || body == "" {
		return cval{}, fmt.Errorf("literal %q: %w", s, errExpr)
	}
	// Candidate types in order; decimal literals without a U suffix are
	// never unsigned.
	type typ struct{ wide, unsigned bool }
	var cands []typ
	decimal := base == 10
	switch {
	case unsignedSuffix && longSuffix:
		cands = []typ{{true, true}}
	case unsignedSuffix:
		cands = []typ{{false, true}, {true, true}}
	case longSuffix && decimal:
		cands = []typ{{true, false}}
	case longSuffix:
		cands = []typ{{true, false}, {true, true}}
	case decimal:
		cands = []typ{{false, false}, {true, false}}
	default:
		cands = []typ{{false, false}, {false, true}, {true, false}, {true, true}}
	}
	for _, t := range cands {
		if fits(u, t.wide, t.unsigned) {
			return cval{bits: u, wide: t.wide, unsigned: t.unsigned}, nil
		}
	}
	return cval{}, fmt.Errorf("literal %q: too large for any integer type: %w", s, errExpr)
}

func fits(u uint64, wide, unsigned bool) bool {
	switch {
	case wide && unsigned:
		return true
	case wide:
		return u <= math.MaxInt64
	case unsigned:
		return u <= math.MaxUint32
	}
	return u <= math.MaxInt32
}

// token is one C token of a macro body.
type token struct {
	kind byte // 'n' number, 'i' identifier, 'p' punctuator
	text string
}

func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case isDigit(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			toks = append(toks, token{'n', s[i:j]})
			i = j
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			toks = append(toks, token{'i', s[i:j]})
			i = j
		case strings.HasPrefix(s[i:], "<<") || strings.HasPrefix(s[i:], ">>"):
			toks = append(toks, token{'p', s[i : i+2]})
			i += 2
		case strings.IndexByte("()+-~!*/%&^|", c) >= 0:
			if i+1 < len(s) && (c == '&' || c == '|') && s[i+1] == c {
				return nil, fmt.Errorf("operator %q not supported: %w", s[i:i+2], errExpr)
			}
			toks = append(toks, token{'p', s[i : i+1]})
			i++
		default:
			return nil, fmt.Errorf("unexpected %q in %q: %w", c, s, errExpr)
		}
	}
	return toks, nil
}

func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isIdent(c byte) bool      { return isIdentStart(c) || isDigit(c) }

// maxTokens bounds a macro's expansion, so a pathological header fails
// instead of exhausting memory.
const maxTokens = 10000

// expander expands object-like macros in token lists.
type expander struct {
	// body returns the body of the object-like macro name, whether name is
	// a macro at all, and whether it is function-like.
	body func(name string) (body string, ok, funcLike bool)
}

// expand replaces every macro name in toks by its expansion. A macro is not
// expanded again inside its own expansion (active), as in C.
func (e expander) expand(toks []token, active map[string]bool) ([]token, error) {
	var out []token
	for _, t := range toks {
		if t.kind != 'i' || active[t.text] {
			out = append(out, t)
			continue
		}
		body, ok, funcLike := e.body(t.text)
		if !ok {
			out = append(out, t)
			continue
		}
		if funcLike {
			return nil, fmt.Errorf("%s is a function-like macro: %w", t.text, errExpr)
		}
		sub, err := tokenize(body)
		if err != nil {
			return nil, fmt.Errorf("in %s: %w", t.text, err)
		}
		active[t.text] = true
		sub, err = e.expand(sub, active)
		delete(active, t.text)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
		if len(out) > maxTokens {
			return nil, fmt.Errorf("expansion longer than %d tokens: %w", maxTokens, errExpr)
		}
	}
	return out, nil
}

// evalMacro expands and evaluates the object-like macro name.
func (e expander) evalMacro(name string) (cval, error) {
	toks, err := e.expand([]token{{'i', name}}, map[string]bool{})
	if err != nil {
		return cval{}, err
	}
	return evalTokens(toks)
}

// evalTokens evaluates an expanded constant expression.
func evalTokens(toks []token) (cval, error) {
	p := &parser{toks: toks}
	v, err := p.binary(0)
	if err != nil {
		return cval{}, err
	}
	if p.pos < len(p.toks) {
		return cval{}, fmt.Errorf("unexpected %q after expression: %w", p.toks[p.pos].text, errExpr)
	}
	return v, nil
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) peek() (token, bool) {
	if p.pos < len(p.toks) {
		return p.toks[p.pos], true
	}
	return token{}, false
}

// precedence of the binary operators, loosest first.
var precedence = map[string]int{
	"|": 1, "^": 2, "&": 3, "<<": 4, ">>": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6,
}

// binary parses operands joined by operators of precedence at least least.
func (p *parser) binary(least int) (cval, error) {
	left, err := p.unary()
	if err != nil {
		return cval{}, err
	}
	for {
		t, ok := p.peek()
		prec := precedence[t.text]
		if !ok || t.kind != 'p' || prec == 0 || prec < least {
			return left, nil
		}
		p.pos++
		right, err := p.binary(prec + 1)
		if err != nil {
			return cval{}, err
		}
		if left, err = apply(t.text, left, right); err != nil {
			return cval{}, err
		}
	}
}

func (p *parser) unary() (cval, error) {
	t, ok := p.peek()
	if !ok {
		return cval{}, fmt.Errorf("expression ends early: %w", errExpr)
	}
	p.pos++
	switch {
	case t.kind == 'n':
		return parseLiteral(t.text)
	case t.kind == 'i':
		return cval{}, fmt.Errorf("unknown identifier %s: %w", t.text, errExpr)
	case t.text == "(":
		v, err := p.binary(0)
		if err != nil {
			return cval{}, err
		}
		if t, ok := p.peek(); !ok || t.text != ")" {
			return cval{}, fmt.Errorf("missing ')': %w", errExpr)
		}
		p.pos++
		return v, nil
	case t.text == "+" || t.text == "-" || t.text == "~" || t.text == "!":
		v, err := p.unary()
		if err != nil {
			return cval{}, err
		}
		switch t.text {
		case "+":
			return v, nil
		case "-":
			return makeVal(new(big.Int).Neg(v.big()), v.wide, v.unsigned)
		case "~":
			return cval{bits: ^v.bits & (math.MaxUint64 >> (64 - v.width())), wide: v.wide, unsigned: v.unsigned}, nil
		default:
			if v.bits == 0 {
				return cval{bits: 1}, nil
			}
			return cval{}, nil
		}
	}
	return cval{}, fmt.Errorf("unexpected %q: %w", t.text, errExpr)
}

// apply computes a op b with C's conversions.
func apply(op string, a, b cval) (cval, error) {
	if op == "<<" || op == ">>" {
		// The result has the type of the left operand; the count must be
		// below its width.
		n := b.big()
		if n.Sign() < 0 || n.Cmp(big.NewInt(int64(a.width()))) >= 0 {
			return cval{}, fmt.Errorf("shift count %s out of range for %s: %w", n, a.typeName(), errExpr)
		}
		if op == ">>" {
			// On a negative signed value this is implementation-defined;
			// GCC and Clang shift arithmetically, as Rsh does.
			return makeVal(new(big.Int).Rsh(a.big(), uint(n.Uint64())), a.wide, a.unsigned)
		}
		// C11 leaves a signed left shift that overflows undefined; GCC
		// and Clang define it as the shift of the bit pattern, which the
		// kernel relies on ("#define MS_NOUSER (1<<31)" is INT_MIN).
		mask := uint64(math.MaxUint64) >> (64 - a.width())
		return cval{bits: a.bits << n.Uint64() & mask, wide: a.wide, unsigned: a.unsigned}, nil
	}
	wide, unsigned := common(a, b)
	a, b = a.convert(wide, unsigned), b.convert(wide, unsigned)
	x, y := a.big(), b.big()
	switch op {
	case "&":
		return cval{bits: a.bits & b.bits, wide: wide, unsigned: unsigned}, nil
	case "|":
		return cval{bits: a.bits | b.bits, wide: wide, unsigned: unsigned}, nil
	case "^":
		return cval{bits: a.bits ^ b.bits, wide: wide, unsigned: unsigned}, nil
	case "+":
		return makeVal(x.Add(x, y), wide, unsigned)
	case "-":
		return makeVal(x.Sub(x, y), wide, unsigned)
	case "*":
		return makeVal(x.Mul(x, y), wide, unsigned)
	case "/", "%":
		if y.Sign() == 0 {
			return cval{}, fmt.Errorf("division by zero: %w", errExpr)
		}
		if op == "/" {
			return makeVal(x.Quo(x, y), wide, unsigned) // truncates, as C does
		}
		return makeVal(x.Rem(x, y), wide, unsigned)
	}
	return cval{}, fmt.Errorf("operator %q not supported: %w", op, errExpr)
}
