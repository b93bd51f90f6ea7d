package nodeagent

import (
	"fmt"
	"testing"

	"github.com/skiffhq/skiff/api"
)

func TestNodeRoutes(t *testing.T) {
	node := func(name, cidr string, addrs ...api.NodeAddress) *api.Node {
		n := &api.Node{}
		n.Name, n.Spec.PodCIDR, n.Status.Addresses = name, cidr, addrs
		return n
	}
	internal := func(ip string) api.NodeAddress { return api.NodeAddress{Type: api.NodeInternalIP, Address: ip} }
	host := api.NodeAddress{Type: api.NodeHostName, Address: "h"}
	nodes := map[string]*api.Node{
		"self":     node("self", "10.244.0.0/24", internal("192.168.0.1")),
		"b":        node("b", "10.244.2.0/24", host, internal("192.168.0.3")),
		"a":        node("a", "10.244.1.0/24", internal("192.168.0.2"), internal("192.168.9.9")),
		"no-cidr":  node("no-cidr", "", internal("192.168.0.4")),
		"no-ip":    node("no-ip", "10.244.4.0/24", host),
		"loopback": node("loopback", "10.244.5.0/24", internal("127.0.0.1")),
		"bad-cidr": node("bad-cidr", "10.244.6.0", internal("192.168.0.6")),
	}
	got := fmt.Sprint(nodeRoutes("self", nodes))
	want := "[{10.244.1.0/24 192.168.0.2} {10.244.2.0/24 192.168.0.3}]"
	if got != want {
		t.Errorf("routes = %s, want %s", got, want)
	}
}
