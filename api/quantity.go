package api

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
)

// QuantityFormat is how a Quantity is printed, taken from the suffix it was
// parsed with.
type QuantityFormat string

// Quantity formats.
const (
	// DecimalSI uses the suffixes n, u, m, "", k, M, G, T, P, E.
	DecimalSI QuantityFormat = "DecimalSI"
	// BinarySI uses Ki, Mi, Gi, Ti, Pi, Ei (and falls back to DecimalSI for
	// values that are not whole multiples of 1024).
	BinarySI QuantityFormat = "BinarySI"
	// DecimalExponent uses e<n> with n a multiple of 3.
	DecimalExponent QuantityFormat = "DecimalExponent"
)

// ErrQuantity is wrapped by every quantity parse error.
var ErrQuantity = errors.New("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")

// Quantity is an amount of a resource in Kubernetes quantity syntax
// ("100m", "0.5", "128Mi", "1G", "1e3"). It is stored exactly as
// mantissa*10^scale with precision down to nano units (finer values round
// up, as in Kubernetes) and an integer value that fits in an int64.
//
// The zero value is 0. Quantities are comparable with Cmp; == also works for
// quantities parsed with the same kind of suffix, as the form is canonical.
type Quantity struct {
	mant   int64
	scale  int32
	format QuantityFormat
}

// minScale is nano: finer quantities are rounded up, as in Kubernetes.
const minScale = -9

var pow10 = func() [19]int64 {
	var p [19]int64
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// ParseQuantity parses Kubernetes quantity syntax.
func ParseQuantity(s string) (Quantity, error) {
	q, err := parseQuantity(s)
	if err != nil {
		return Quantity{}, fmt.Errorf("parse quantity %q: %w", s, err)
	}
	return q, nil
}

// MustParseQuantity is ParseQuantity for constants; it panics on error.
func MustParseQuantity(s string) Quantity {
	q, err := ParseQuantity(s)
	if err != nil {
		panic(err)
	}
	return q
}

// NewQuantity returns value in the given format.
func NewQuantity(value int64, format QuantityFormat) Quantity {
	return normalize(value, 0, format)
}

// NewMilliQuantity returns milli/1000 in the given format.
func NewMilliQuantity(milli int64, format QuantityFormat) Quantity {
	return normalize(milli, -3, format)
}

func normalize(m int64, scale int32, f QuantityFormat) Quantity {
	if m == 0 {
		return Quantity{format: f}
	}
	for m%10 == 0 {
		m /= 10
		scale++
	}
	return Quantity{mant: m, scale: scale, format: f}
}

func parseQuantity(s string) (Quantity, error) {
	i := 0
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	// Significant digits, without leading zeros, and the position of '.'.
	var digits [18]byte
	nd := 0
	var scale int32
	sawDigit, sawDot := false, false
	pendingZeros := int32(0) // zeros not yet known to be significant
	for ; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			if sawDot {
				return Quantity{}, ErrQuantity
			}
			sawDot = true
			continue
		}
		if c < '0' || c > '9' {
			break
		}
		sawDigit = true
		if sawDot {
			scale--
		}
		if c == '0' {
			if nd > 0 {
				pendingZeros++
			}
			continue
		}
		if nd+int(pendingZeros)+1 > len(digits) {
			return Quantity{}, errors.New("too many significant digits")
		}
		for ; pendingZeros > 0; pendingZeros-- {
			digits[nd] = 0
			nd++
		}
		digits[nd] = c - '0'
		nd++
	}
	if !sawDigit {
		return Quantity{}, ErrQuantity
	}
	// Trailing zeros scale the mantissa instead of being stored.
	scale += pendingZeros
	var m int64
	for _, d := range digits[:nd] {
		m = m*10 + int64(d)
	}
	if neg {
		m = -m
	}

	format := DecimalSI
	suffix := s[i:]
	var binExp uint
	switch suffix {
	case "":
	case "n":
		scale -= 9
	case "u":
		scale -= 6
	case "m":
		scale -= 3
	case "k":
		scale += 3
	case "M":
		scale += 6
	case "G":
		scale += 9
	case "T":
		scale += 12
	case "P":
		scale += 15
	case "E":
		scale += 18
	case "Ki", "Mi", "Gi", "Ti", "Pi", "Ei":
		format = BinarySI
		binExp = 10 * uint(1+indexByte("KMGTPE", suffix[0]))
	default:
		if suffix[0] != 'e' && suffix[0] != 'E' {
			return Quantity{}, ErrQuantity
		}
		e, err := strconv.ParseInt(suffix[1:], 10, 32)
		if err != nil || len(suffix) == 1 || suffix[1] == '+' && len(suffix) == 2 {
			return Quantity{}, ErrQuantity
		}
		if e > 64 || e < -64 {
			return Quantity{}, errors.New("exponent out of range")
		}
		format = DecimalExponent
		scale += int32(e)
	}
	if binExp > 0 && m != 0 {
		hi, lo := bits.Mul64(uint64(abs64(m)), 1<<binExp)
		if hi != 0 || lo > math.MaxInt64 {
			return Quantity{}, errors.New("value too large")
		}
		if m < 0 {
			m = -int64(lo)
		} else {
			m = int64(lo)
		}
	}
	if m == 0 {
		return Quantity{format: format}, nil
	}
	// Round finer than nano up (away from zero for positive values, as
	// Kubernetes rounds towards +infinity).
	if scale < minScale {
		shift := minScale - scale
		if shift > 18 {
			if m > 0 {
				m = 1
			} else {
				m = 0
			}
		} else {
			d := pow10[shift]
			r := m % d
			m /= d
			if r > 0 {
				m++
			}
		}
		scale = minScale
		if m == 0 {
			return Quantity{format: format}, nil
		}
	}
	q := normalize(m, scale, format)
	// The integer value must fit in an int64.
	if q.scale > 0 {
		if q.scale > 18 {
			return Quantity{}, errors.New("value too large")
		}
		hi, lo := bits.Mul64(uint64(abs64(q.mant)), uint64(pow10[q.scale]))
		if hi != 0 || lo > math.MaxInt64 {
			return Quantity{}, errors.New("value too large")
		}
	}
	return q, nil
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// IsZero reports whether the quantity is 0.
func (q Quantity) IsZero() bool { return q.mant == 0 }

// Sign returns -1, 0 or 1.
func (q Quantity) Sign() int {
	switch {
	case q.mant < 0:
		return -1
	case q.mant > 0:
		return 1
	}
	return 0
}

// Format returns the format the quantity prints in.
func (q Quantity) Format() QuantityFormat {
	if q.format == "" {
		return DecimalSI
	}
	return q.format
}

// Value returns the value rounded up to an integer.
func (q Quantity) Value() int64 { return q.scaledValue(0) }

// MilliValue returns the value in thousandths, rounded up; it saturates at
// the int64 limits.
func (q Quantity) MilliValue() int64 { return q.scaledValue(-3) }

// scaledValue returns ceil(q / 10^unit), saturating.
func (q Quantity) scaledValue(unit int32) int64 {
	e := q.scale - unit
	m := q.mant
	switch {
	case m == 0:
		return 0
	case e >= 0:
		if e > 18 {
			return saturate(m)
		}
		hi, lo := bits.Mul64(uint64(abs64(m)), uint64(pow10[e]))
		if hi != 0 || lo > math.MaxInt64 {
			return saturate(m)
		}
		if m < 0 {
			return -int64(lo)
		}
		return int64(lo)
	default:
		if -e > 18 {
			if m > 0 {
				return 1
			}
			return 0
		}
		d := pow10[-e]
		v := m / d
		if m%d > 0 {
			v++
		}
		return v
	}
}

func saturate(m int64) int64 {
	if m < 0 {
		return math.MinInt64
	}
	return math.MaxInt64
}

// Cmp returns -1, 0 or 1 as q is less than, equal to or greater than o.
func (q Quantity) Cmp(o Quantity) int {
	if q.Sign() != o.Sign() || q.mant == 0 {
		return cmpInt(q.Sign(), o.Sign())
	}
	// Same sign, both nonzero: align to the smaller scale. Values fit in
	// int64 and scales are >= -9, so compare in 128 bits.
	a, b := q, o
	s := min(a.scale, b.scale)
	ah, al := mul128(a.mant, a.scale-s)
	bh, bl := mul128(b.mant, b.scale-s)
	c := cmpInt128(ah, al, bh, bl)
	if q.mant < 0 {
		return -c
	}
	return c
}

// mul128 returns |m|*10^e as 128 bits; e <= 27 for valid quantities, so it
// multiplies in two steps.
func mul128(m int64, e int32) (hi, lo uint64) {
	hi, lo = 0, uint64(abs64(m))
	for e > 0 {
		step := min(e, 18)
		p := uint64(pow10[step])
		h1, l1 := bits.Mul64(lo, p)
		hi = hi*p + h1
		lo = l1
		e -= step
	}
	return hi, lo
}

func cmpInt128(ah, al, bh, bl uint64) int {
	switch {
	case ah != bh:
		return cmpUint(ah, bh)
	default:
		return cmpUint(al, bl)
	}
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// String returns the canonical form: the largest suffix of the quantity's
// format that keeps the number an integer ("1500m", "1k", "1536Mi").
func (q Quantity) String() string {
	return string(q.appendString(make([]byte, 0, 24)))
}

var decimalSuffixes = map[int32]string{-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}

func (q Quantity) appendString(b []byte) []byte {
	if q.mant == 0 {
		return append(b, '0')
	}
	format := q.Format()
	if format == BinarySI {
		if q.scale < 0 || (q.mant > -1024 && q.mant < 1024 && q.scale == 0) {
			format = DecimalSI
		} else if v := q.Value(); v > -1024 && v < 1024 {
			format = DecimalSI
		} else {
			var i int
			for i = 0; i < 6 && v%1024 == 0; i++ {
				v /= 1024
			}
			b = strconv.AppendInt(b, v, 10)
			if i > 0 {
				b = append(b, "KMGTPE"[i-1], 'i')
			}
			return b
		}
	}
	// Largest exponent that is a multiple of 3, <= scale, within [-9, 18].
	e := q.scale
	if e >= 0 {
		e -= e % 3
	} else {
		e -= (3 + e%3) % 3
	}
	e = max(min(e, 18), -9)
	m := q.mant
	for s := q.scale; s > e; s-- {
		m *= 10 // fits: the integer value fits in an int64
	}
	b = strconv.AppendInt(b, m, 10)
	if format == DecimalExponent {
		if e != 0 {
			b = append(b, 'e')
			b = strconv.AppendInt(b, int64(e), 10)
		}
		return b
	}
	return append(b, decimalSuffixes[e]...)
}

// MarshalJSON writes the canonical string.
func (q Quantity) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 26)
	b = append(b, '"')
	b = q.appendString(b)
	return append(b, '"'), nil
}

// UnmarshalJSON reads a quantity string or a JSON number.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		*q = Quantity{}
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		u, err := strconv.Unquote(s)
		if err != nil {
			return fmt.Errorf("parse quantity %s: %w", s, err)
		}
		s = u
	}
	v, err := ParseQuantity(s)
	if err != nil {
		return err
	}
	*q = v
	return nil
}
