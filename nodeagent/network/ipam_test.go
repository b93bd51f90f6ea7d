package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/skiffhq/skiff/nodeagent/runtime"
)

func attach(t *testing.T, m *IPAM, sb string) netip.Addr {
	t.Helper()
	ip, err := m.Attach(context.Background(), Attachment{Sandbox: runtime.SandboxID(sb)})
	if err != nil {
		t.Fatalf("Attach %s: %v", sb, err)
	}
	return ip
}

func TestIPAMSkipsReservedAddresses(t *testing.T) {
	m, err := NewIPAM(netip.MustParsePrefix("10.244.3.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range 5 {
		got = append(got, attach(t, m, fmt.Sprint(i)).String())
	}
	want := "[10.244.3.2 10.244.3.3 10.244.3.4 10.244.3.5 10.244.3.6]"
	if fmt.Sprint(got) != want {
		t.Fatalf("addresses of a /29 = %v, want %s (no .0, .1 gateway or .7 broadcast)", got, want)
	}
	if _, err := m.Attach(context.Background(), Attachment{Sandbox: "full"}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("a full /29: %v, want ErrExhausted", err)
	}
}

func TestIPAMIdempotentAndRoundRobin(t *testing.T) {
	m, _ := NewIPAM(netip.MustParsePrefix("10.244.0.0/24"))
	a := attach(t, m, "a")
	if again := attach(t, m, "a"); again != a {
		t.Fatalf("re-attach gave %v, want %v", again, a)
	}
	b := attach(t, m, "b")
	if err := m.Detach(context.Background(), Attachment{Sandbox: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(context.Background(), Attachment{Sandbox: "a"}); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
	if c := attach(t, m, "c"); c == a || c == b {
		t.Fatalf("a new sandbox got %v right after it was released (or still in use)", c)
	}
	if m.InUse() != 2 {
		t.Fatalf("InUse = %d, want 2", m.InUse())
	}
}

func TestIPAMPrefer(t *testing.T) {
	m, _ := NewIPAM(netip.MustParsePrefix("10.244.0.0/24"))
	want := netip.MustParseAddr("10.244.0.77")
	got, err := m.Attach(context.Background(), Attachment{Sandbox: "adopted", Prefer: want})
	if err != nil || got != want {
		t.Fatalf("Attach preferring %v = %v, %v", want, got, err)
	}
	other, _ := m.Attach(context.Background(), Attachment{Sandbox: "other", Prefer: want})
	if other == want {
		t.Fatal("a preferred address already in use was given twice")
	}
	outside, _ := m.Attach(context.Background(), Attachment{Sandbox: "outside", Prefer: netip.MustParseAddr("10.0.0.5")})
	if !m.Prefix().Contains(outside) {
		t.Fatalf("got %v outside the pod CIDR", outside)
	}
}

func TestIPAMWrapsAround(t *testing.T) {
	m, _ := NewIPAM(netip.MustParsePrefix("10.244.0.0/29"))
	for i := range 5 {
		attach(t, m, fmt.Sprint(i))
	}
	m.Detach(context.Background(), Attachment{Sandbox: "1"})
	if got := attach(t, m, "again"); got != netip.MustParseAddr("10.244.0.3") {
		t.Fatalf("after wrapping: %v, want the one free address 10.244.0.3", got)
	}
}

func TestIPAMv6AndTooSmall(t *testing.T) {
	m, err := NewIPAM(netip.MustParsePrefix("fd00::/126"))
	if err != nil {
		t.Fatal(err)
	}
	if got := attach(t, m, "a"); got != netip.MustParseAddr("fd00::2") {
		t.Fatalf("first v6 address %v, want fd00::2", got)
	}
	if got := attach(t, m, "b"); got != netip.MustParseAddr("fd00::3") {
		t.Fatalf("second v6 address %v, want fd00::3 (no broadcast in v6)", got)
	}
	if _, err := NewIPAM(netip.MustParsePrefix("10.0.0.0/31")); err == nil {
		t.Fatal("a /31 was accepted")
	}
}
