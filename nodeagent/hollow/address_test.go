package hollow

import (
	"net/netip"
	"testing"
)

func TestAddress(t *testing.T) {
	f := &Fleet{cfg: Config{AddressBase: DefaultAddressBase}}
	for i, want := range map[int]string{0: "198.18.0.1", 254: "198.18.0.255", 255: "198.18.1.0", 4999: "198.18.19.136", 65535: "198.19.0.0"} {
		if got := f.address(i); got != netip.MustParseAddr(want) {
			t.Errorf("address(%d) = %v, want %s", i, got, want)
		}
	}
	f.cfg.AddressBase = netip.MustParseAddr("fd00::ff")
	if got := f.address(0); got != netip.MustParseAddr("fd00::100") {
		t.Errorf("v6 address(0) = %v", got)
	}
}

func TestName(t *testing.T) {
	f := &Fleet{cfg: Config{Prefix: "sim-"}, width: 4}
	if got := f.Name(7); got != "sim-0007" {
		t.Errorf("Name(7) = %q", got)
	}
}
