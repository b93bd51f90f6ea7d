package api

import (
	"encoding/json"
	"testing"
)

func TestParseQuantity(t *testing.T) {
	tests := []struct {
		in     string
		str    string
		milli  int64
		value  int64
		format QuantityFormat
	}{
		{"0", "0", 0, 0, DecimalSI},
		{"100m", "100m", 100, 1, DecimalSI},
		{"0.5", "500m", 500, 1, DecimalSI},
		{".5", "500m", 500, 1, DecimalSI},
		{"1", "1", 1000, 1, DecimalSI},
		{"1.5", "1500m", 1500, 2, DecimalSI},
		{"1500", "1500", 1500000, 1500, DecimalSI},
		{"1000", "1k", 1000000, 1000, DecimalSI},
		{"128Mi", "128Mi", 128 << 20 * 1000, 128 << 20, BinarySI},
		{"1.5Gi", "1536Mi", 1536 << 20 * 1000, 1536 << 20, BinarySI},
		{"1024Ki", "1Mi", 1 << 20 * 1000, 1 << 20, BinarySI},
		{"0.5Ki", "512", 512000, 512, BinarySI},
		{"1G", "1G", 1e12, 1e9, DecimalSI},
		{"1e3", "1e3", 1e6, 1000, DecimalExponent},
		{"1E3", "1e3", 1e6, 1000, DecimalExponent},
		{"1.5e3", "1500", 1500000, 1500, DecimalExponent},
		{"2E", "2E", 9223372036854775807, 2e18, DecimalSI}, // milli saturates
		{"10u", "10u", 1, 1, DecimalSI},
		{"1n", "1n", 1, 1, DecimalSI},
		{"0.0000000001", "1n", 1, 1, DecimalSI}, // finer than nano rounds up
		{"-100m", "-100m", -100, 0, DecimalSI},
		{"+2", "2", 2000, 2, DecimalSI},
		{"007", "7", 7000, 7, DecimalSI},
		{"1.000", "1", 1000, 1, DecimalSI},
		{"1Ei", "1Ei", 9223372036854775807, 1 << 60, BinarySI}, // milli saturates
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			q, err := ParseQuantity(tt.in)
			if err != nil {
				t.Fatalf("ParseQuantity: %v", err)
			}
			if got := q.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if got := q.MilliValue(); got != tt.milli {
				t.Errorf("MilliValue() = %d, want %d", got, tt.milli)
			}
			if got := q.Value(); got != tt.value {
				t.Errorf("Value() = %d, want %d", got, tt.value)
			}
			if got := q.Format(); got != tt.format {
				t.Errorf("Format() = %s, want %s", got, tt.format)
			}
			// The canonical form parses back to the same quantity.
			back, err := ParseQuantity(q.String())
			if err != nil || back.Cmp(q) != 0 {
				t.Errorf("round trip of %q: got %v, %v", q.String(), back, err)
			}
		})
	}
}

func TestParseQuantityInvalid(t *testing.T) {
	for _, in := range []string{"", " ", "m", "1.2.3", "1x", "1Mb", "1e", "1e+", "1K", "abc", "--1", "1 ", "1e99", "10E", "99999999999999999999", "1.5.Gi", "0x10"} {
		t.Run(in, func(t *testing.T) {
			if q, err := ParseQuantity(in); err == nil {
				t.Errorf("ParseQuantity(%q) = %v, want error", in, q)
			}
		})
	}
}

func TestQuantityJSON(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{`"100m"`, `"100m"`},
		{`"1.5Gi"`, `"1536Mi"`},
		{`2`, `"2"`},
		{`0.5`, `"500m"`},
		{`1e3`, `"1e3"`},
	}
	for _, tt := range tests {
		var q Quantity
		if err := json.Unmarshal([]byte(tt.in), &q); err != nil {
			t.Fatalf("Unmarshal(%s): %v", tt.in, err)
		}
		b, err := json.Marshal(q)
		if err != nil || string(b) != tt.want {
			t.Errorf("Marshal after Unmarshal(%s) = %s, %v; want %s", tt.in, b, err, tt.want)
		}
	}
	var q Quantity
	if err := json.Unmarshal([]byte(`"12x"`), &q); err == nil {
		t.Error("Unmarshal of invalid quantity: want error")
	}
}

func TestQuantityCmp(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "1000m", 0},
		{"1Gi", "1073741824", 0},
		{"1G", "1Gi", -1},
		{"500m", "0.4", 1},
		{"-1", "0", -1},
		{"0", "0Mi", 0},
		{"1n", "0", 1},
		{"8E", "1n", 1},
	}
	for _, tt := range tests {
		if got := MustParseQuantity(tt.a).Cmp(MustParseQuantity(tt.b)); got != tt.want {
			t.Errorf("%s.Cmp(%s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{"100m", "1.5Gi", "1e3", "0.0000000001", "-2E", "128Mi"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuantity(s)
		if err != nil {
			return
		}
		back, err := ParseQuantity(q.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", q.String(), s, err)
		}
		if back.Cmp(q) != 0 {
			t.Fatalf("round trip of %q: %q != %q", s, back.String(), q.String())
		}
	})
}
