package api

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// IntOrStringType says which field of an IntOrString is set.
type IntOrStringType int

// IntOrString types.
const (
	IntOrStringInt    IntOrStringType = iota // IntVal is set
	IntOrStringString                        // StrVal is set
)

// IntOrString is a JSON int or string: a port number or port name, or a
// count or percentage ("25%").
type IntOrString struct {
	Type   IntOrStringType
	IntVal int32
	StrVal string
}

// FromInt32 returns an IntOrString holding an int.
func FromInt32(v int32) IntOrString { return IntOrString{Type: IntOrStringInt, IntVal: v} }

// FromString returns an IntOrString holding a string.
func FromString(s string) IntOrString { return IntOrString{Type: IntOrStringString, StrVal: s} }

// IntOrStringPtr returns a pointer to v, for optional fields.
func IntOrStringPtr(v IntOrString) *IntOrString { return &v }

// String returns the int as decimal or the string.
func (v IntOrString) String() string {
	if v.Type == IntOrStringString {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}

// IsZero reports whether v is the int 0, the value of an unset field.
func (v IntOrString) IsZero() bool { return v.Type == IntOrStringInt && v.IntVal == 0 }

// MarshalJSON writes a JSON number or string.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.Type == IntOrStringString {
		return json.Marshal(v.StrVal)
	}
	return strconv.AppendInt(nil, int64(v.IntVal), 10), nil
}

// UnmarshalJSON reads a JSON number (an int32) or string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.Type = IntOrStringString
		v.IntVal = 0
		return json.Unmarshal(b, &v.StrVal)
	}
	if string(b) == "null" {
		*v = IntOrString{}
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 32)
	if err != nil {
		return fmt.Errorf("expected an int32 or a string, got %s", b)
	}
	*v = IntOrString{Type: IntOrStringInt, IntVal: int32(n)}
	return nil
}

// IsPercent reports whether v is a string of the form "N%".
func (v IntOrString) IsPercent() bool {
	return v.Type == IntOrStringString && strings.HasSuffix(v.StrVal, "%")
}

// percent parses "N%" (N a non-negative integer).
func (v IntOrString) percent() (int, error) {
	s, ok := strings.CutSuffix(v.StrVal, "%")
	if !ok {
		return 0, fmt.Errorf("invalid value %q: must be an integer or a percentage (e.g. '5%%')", v.StrVal)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || s == "" || s[0] == '+' {
		return 0, fmt.Errorf("invalid value %q: must be an integer or a percentage (e.g. '5%%')", v.StrVal)
	}
	return n, nil
}

// ScaledValue resolves v against total: an int is returned as is, a
// percentage is total*N/100 rounded up (roundUp, as for maxSurge) or down
// (as for maxUnavailable). A nil v resolves to 0.
func ScaledValue(v *IntOrString, total int, roundUp bool) (int, error) {
	if v == nil {
		return 0, nil
	}
	if v.Type == IntOrStringInt {
		return int(v.IntVal), nil
	}
	p, err := v.percent()
	if err != nil {
		return 0, err
	}
	f := float64(p) * float64(total) / 100
	if roundUp {
		return int(math.Ceil(f)), nil
	}
	return int(math.Floor(f)), nil
}

// ResolveFenceposts resolves a rolling update's maxSurge (rounded up) and
// maxUnavailable (rounded down) against the desired replicas, as the
// Kubernetes deployment controller does: when both come out 0,
// maxUnavailable becomes 1 so the rollout can progress.
func ResolveFenceposts(maxSurge, maxUnavailable *IntOrString, desired int32) (surge, unavailable int32, err error) {
	s, err := ScaledValue(maxSurge, int(desired), true)
	if err != nil {
		return 0, 0, fmt.Errorf("resolve maxSurge: %w", err)
	}
	u, err := ScaledValue(maxUnavailable, int(desired), false)
	if err != nil {
		return 0, 0, fmt.Errorf("resolve maxUnavailable: %w", err)
	}
	if s == 0 && u == 0 {
		u = 1
	}
	return int32(s), int32(u), nil
}
