package cloudprovider

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePool(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		in      string
		want    Pool
		str     string // String() of the result; "" means in
		wantErr string
	}{
		{in: "192.168.1.240/28", want: Pool{{a("192.168.1.240"), a("192.168.1.255")}}},
		{in: "192.168.1.240-192.168.1.250", want: Pool{{a("192.168.1.240"), a("192.168.1.250")}}},
		{in: " 192.168.1.240 - 192.168.1.250 ", want: Pool{{a("192.168.1.240"), a("192.168.1.250")}}, str: "192.168.1.240-192.168.1.250"},
		{in: "10.0.0.7", want: Pool{{a("10.0.0.7"), a("10.0.0.7")}}},
		{in: "10.0.0.7/32", want: Pool{{a("10.0.0.7"), a("10.0.0.7")}}, str: "10.0.0.7"},
		{in: "10.0.0.0-10.0.0.255", want: Pool{{a("10.0.0.0"), a("10.0.0.255")}}, str: "10.0.0.0/24"},
		{in: "fd00::/120,10.0.0.1-10.0.0.2", want: Pool{{a("fd00::"), a("fd00::ff")}, {a("10.0.0.1"), a("10.0.0.2")}}},
		{in: "fd00::1-fd00::9", want: Pool{{a("fd00::1"), a("fd00::9")}}},
		{in: "::ffff:10.0.0.1-::ffff:10.0.0.3", want: Pool{{a("10.0.0.1"), a("10.0.0.3")}}, str: "10.0.0.1-10.0.0.3"},

		{in: "", wantErr: "empty pool entry"},
		{in: "10.0.0.0/24,", wantErr: "empty pool entry"},
		{in: "10.0.0.5/24", wantErr: `has host bits set (did you mean 10.0.0.0/24?)`},
		{in: "10.0.0.0/33", wantErr: `pool entry "10.0.0.0/33"`},
		{in: "10.0.0.9-10.0.0.1", wantErr: "first address is after the last"},
		{in: "10.0.0.1-fd00::1", wantErr: "mixes IPv4 and IPv6"},
		{in: "10.0.0.1-", wantErr: "last address"},
		{in: "-10.0.0.1", wantErr: "first address"},
		{in: "192.168.1.240-250", wantErr: "last address"},
		{in: "fe80::1%eth0", wantErr: "must not have a zone"},
		{in: "lb.example.com", wantErr: "want an address, a prefix (a.b.c.d/n) or a range (first-last)"},
		{in: "10.0.0.0/24,10.0.0.128-10.0.1.5", wantErr: "pool entries 10.0.0.0/24 and 10.0.0.128-10.0.1.5 overlap"},
		{in: "10.0.0.1,10.0.0.1", wantErr: "overlap"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePool(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParsePool(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePool(%q): %v", tc.in, err)
			}
			if got.String() != tc.want.String() || len(got) != len(tc.want) {
				t.Fatalf("ParsePool(%q) = %v, want %v", tc.in, got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("ParsePool(%q)[%d] = %#v, want %#v", tc.in, i, got[i], tc.want[i])
				}
			}
			want := tc.str
			if want == "" {
				want = tc.in
			}
			if got.String() != want {
				t.Errorf("String() = %q, want %q", got.String(), want)
			}
			again, err := ParsePool(got.String())
			if err != nil || again.String() != got.String() {
				t.Errorf("round trip of %q: %v, %v", got, again, err)
			}
		})
	}
}

func TestPoolSetAppendsAndKeepsOldValueOnError(t *testing.T) {
	var p Pool
	if err := p.Set("10.0.0.0/30"); err != nil {
		t.Fatal(err)
	}
	if err := p.Set("10.0.1.1-10.0.1.2"); err != nil {
		t.Fatal(err)
	}
	if err := p.Set("10.0.0.2"); err == nil {
		t.Fatal("overlapping Set succeeded")
	}
	if got, want := p.String(), "10.0.0.0/30,10.0.1.1-10.0.1.2"; got != want {
		t.Fatalf("pool = %s, want %s", got, want)
	}
	for addr, want := range map[string]bool{"10.0.0.0": true, "10.0.0.3": true, "10.0.0.4": false, "10.0.1.2": true, "::ffff:10.0.1.1": true, "fd00::1": false} {
		if got := p.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestNewLocalRejectsBadPool(t *testing.T) {
	a := netip.MustParseAddr
	_, err := NewLocal(Config{LoadBalancerPool: Pool{{a("10.0.0.5"), a("10.0.0.1")}}})
	if err == nil || !strings.Contains(err.Error(), "first address is after the last") {
		t.Fatalf("NewLocal with a reversed range: %v", err)
	}
	_, err = NewLocal(Config{LoadBalancerPool: Pool{RangeOf(netip.MustParsePrefix("10.0.0.0/24")), {a("10.0.0.9"), a("10.0.0.9")}}})
	if err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Fatalf("NewLocal with overlapping ranges: %v", err)
	}
}
