package api

import (
	"encoding/json"
	"testing"
)

func TestScaledValue(t *testing.T) {
	tests := []struct {
		v       *IntOrString
		total   int
		roundUp bool
		want    int
		wantErr bool
	}{
		{nil, 10, true, 0, false},
		{IntOrStringPtr(FromInt32(3)), 10, true, 3, false},
		{IntOrStringPtr(FromString("25%")), 10, true, 3, false},  // 2.5 up
		{IntOrStringPtr(FromString("25%")), 10, false, 2, false}, // 2.5 down
		{IntOrStringPtr(FromString("25%")), 3, true, 1, false},
		{IntOrStringPtr(FromString("25%")), 3, false, 0, false},
		{IntOrStringPtr(FromString("100%")), 7, false, 7, false},
		{IntOrStringPtr(FromString("0%")), 7, true, 0, false},
		{IntOrStringPtr(FromString("33%")), 100, true, 33, false},
		{IntOrStringPtr(FromString("25")), 10, true, 0, true},
		{IntOrStringPtr(FromString("x%")), 10, true, 0, true},
		{IntOrStringPtr(FromString("-5%")), 10, true, 0, true},
		{IntOrStringPtr(FromString("%")), 10, true, 0, true},
	}
	for _, tt := range tests {
		got, err := ScaledValue(tt.v, tt.total, tt.roundUp)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ScaledValue(%v, %d, %v) = %d, %v; want %d, err %v", tt.v, tt.total, tt.roundUp, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestResolveFenceposts(t *testing.T) {
	tests := []struct {
		surge, unavail *IntOrString
		desired        int32
		wantS, wantU   int32
	}{
		{IntOrStringPtr(FromString("25%")), IntOrStringPtr(FromString("25%")), 10, 3, 2},
		{IntOrStringPtr(FromString("25%")), IntOrStringPtr(FromString("25%")), 1, 1, 0},
		{IntOrStringPtr(FromInt32(0)), IntOrStringPtr(FromString("10%")), 5, 0, 1}, // both 0: unavailable 1
		{IntOrStringPtr(FromInt32(2)), IntOrStringPtr(FromInt32(1)), 5, 2, 1},
	}
	for _, tt := range tests {
		s, u, err := ResolveFenceposts(tt.surge, tt.unavail, tt.desired)
		if err != nil || s != tt.wantS || u != tt.wantU {
			t.Errorf("ResolveFenceposts(%v, %v, %d) = %d, %d, %v; want %d, %d", tt.surge, tt.unavail, tt.desired, s, u, err, tt.wantS, tt.wantU)
		}
	}
	if _, _, err := ResolveFenceposts(IntOrStringPtr(FromString("a")), nil, 3); err == nil {
		t.Error("invalid maxSurge: want error")
	}
}

func TestIntOrStringJSON(t *testing.T) {
	tests := []struct {
		in   string
		want IntOrString
	}{
		{`80`, FromInt32(80)},
		{`"http"`, FromString("http")},
		{`"25%"`, FromString("25%")},
	}
	for _, tt := range tests {
		var v IntOrString
		if err := json.Unmarshal([]byte(tt.in), &v); err != nil || v != tt.want {
			t.Errorf("Unmarshal(%s) = %+v, %v; want %+v", tt.in, v, err, tt.want)
		}
		b, _ := json.Marshal(v)
		if string(b) != tt.in {
			t.Errorf("Marshal(%+v) = %s, want %s", v, b, tt.in)
		}
	}
	for _, in := range []string{`1.5`, `true`, `3000000000`} {
		var v IntOrString
		if err := json.Unmarshal([]byte(in), &v); err == nil {
			t.Errorf("Unmarshal(%s): want error", in)
		}
	}
}
