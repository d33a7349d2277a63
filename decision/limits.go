package decision

import (
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// OPA checks for cancellation between evaluation steps, not inside a
// built-in: bits.lsh(1, 10000000000) builds a 1.25 GB integer in one call,
// and repeated multiplication doubles a number's size in each. The deadline
// answers the caller on time whatever the evaluator does (see eval); these
// limits bound what the abandoned evaluation can still cost, by refusing
// the numbers that make a built-in expensive before it starts.
//
// Numbers in authorization data are ids, counts, prices and timestamps (a
// nanosecond timestamp has 19 digits), so the limits are far above them.
const (
	// maxNumberText bounds the text of a number (or of a string parsed as
	// one) that reaches an arithmetic or number-parsing built-in.
	maxNumberText = 100
	// maxShift bounds bits.lsh's shift: 2^320 has 97 digits.
	maxShift = 320
	// maxFormatWidth bounds a width or precision in sprintf's format.
	maxFormatWidth = 999
)

// boundedBuiltins are the built-ins whose cost grows with the size of a
// number they are given, and how their operands are checked.
var boundedBuiltins = map[*ast.Builtin]func(ops []*ast.Term) error{
	ast.Plus: numbers, ast.Minus: numbers, ast.Multiply: numbers, ast.Divide: numbers, ast.Rem: numbers,
	ast.Abs: numbers, ast.Round: numbers, ast.Ceil: numbers, ast.Floor: numbers,
	ast.BitsAnd: numbers, ast.BitsOr: numbers, ast.BitsXOr: numbers, ast.BitsNegate: numbers,
	ast.BitsShiftRight: numbers, ast.BitsShiftLeft: shiftLeft,
	ast.FormatInt: numbers, ast.NumbersRange: numbers, ast.NumbersRangeStep: numbers,
	ast.Sum: numbers, ast.Product: numbers,
	ast.ToNumber: numbers, ast.UnitsParse: numbers, ast.UnitsParseBytes: numbers,
	ast.Sprintf: format,
}

// The limits apply to every evaluation in the process: OPA looks built-ins
// up in one global table, before any per-query function.
func init() {
	for decl, check := range boundedBuiltins {
		next := topdown.GetBuiltin(decl.Name)
		if next == nil {
			panic("decision: no built-in " + decl.Name + " to bound")
		}
		name := decl.Name
		topdown.RegisterBuiltinFunc(name, func(bctx topdown.BuiltinContext, ops []*ast.Term, iter func(*ast.Term) error) error {
			if err := check(ops); err != nil {
				return fmt.Errorf("%s: %w (Warden bounds what reaches this built-in; see docs/policies.md)", name, err)
			}
			return next(bctx, ops, iter)
		})
	}
}

// numbers refuses numbers, and strings parsed as numbers, with a text over
// maxNumberText, also inside arrays and sets (sum, product).
func numbers(ops []*ast.Term) error {
	for _, op := range ops {
		if err := numberText(op.Value); err != nil {
			return err
		}
	}
	return nil
}

func numberText(v ast.Value) error {
	switch v := v.(type) {
	case ast.Number:
		if len(v) > maxNumberText {
			return fmt.Errorf("a number of %d characters, over %d", len(v), maxNumberText)
		}
	case ast.String:
		if len(v) > maxNumberText {
			return fmt.Errorf("a number text of %d characters, over %d", len(v), maxNumberText)
		}
	case *ast.Array:
		for i := range v.Len() {
			if err := numberText(v.Elem(i).Value); err != nil {
				return err
			}
		}
	case ast.Set:
		for _, t := range v.Slice() {
			if err := numberText(t.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// shiftLeft bounds the shift of bits.lsh besides its numbers.
func shiftLeft(ops []*ast.Term) error {
	if err := numbers(ops); err != nil {
		return err
	}
	if len(ops) > 1 {
		if n, ok := ops[1].Value.(ast.Number); ok {
			if s, ok := n.Int(); !ok || s > maxShift {
				return fmt.Errorf("a shift of %s bits, over %d", n, maxShift)
			}
		}
	}
	return nil
}

// format refuses sprintf widths and precisions over maxFormatWidth and
// widths taken from the arguments ("%*d"), which fmt would pad to.
func format(ops []*ast.Term) error {
	if len(ops) == 0 {
		return nil
	}
	f, ok := ops[0].Value.(ast.String)
	if !ok {
		return nil
	}
	s := string(f)
	for i := strings.IndexByte(s, '%'); i >= 0; {
		j := i + 1
		width := 0
		for j < len(s) && strings.IndexByte("+-# 0123456789.*[]", s[j]) >= 0 {
			switch c := s[j]; {
			case c == '*':
				return fmt.Errorf("format %q takes a width from its arguments", s)
			case c >= '0' && c <= '9':
				width = width*10 + int(c-'0')
				if width > maxFormatWidth {
					return fmt.Errorf("format %q has a width or precision over %d", s, maxFormatWidth)
				}
			default:
				width = 0
			}
			j++
		}
		k := strings.IndexByte(s[min(j+1, len(s)):], '%')
		if k < 0 {
			break
		}
		i = min(j+1, len(s)) + k
	}
	return nil
}
