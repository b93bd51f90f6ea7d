package cni

import (
	"encoding/json"
	"fmt"
	"net/netip"
)

// NetworkName is the name of the conflist (and of host-local's data
// subdirectory).
const NetworkName = "skiff"

// cniVersion is the newest spec version Debian 12's plugins (1.1.1) speak.
const cniVersion = "1.0.0"

// conflist renders the network configuration for cfg (with defaults set).
func conflist(cfg Config) ([]byte, error) {
	prefix := cfg.PodCIDR.Masked()
	gw := prefix.Addr().Next()
	defaultRoute := "0.0.0.0/0"
	if prefix.Addr().Is6() {
		defaultRoute = "::/0"
	}
	bridge := map[string]any{
		"type":         "bridge",
		"bridge":       cfg.BridgeName,
		"isGateway":    true,
		"ipMasq":       cfg.IPMasq,
		"hairpinMode":  true,
		"capabilities": map[string]bool{"ips": true},
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": cfg.dataDir(),
			"ranges": [][]map[string]string{{{
				"subnet":  prefix.String(),
				"gateway": gw.String(),
			}}},
			"routes": []map[string]string{{"dst": defaultRoute}},
		},
	}
	if cfg.MTU > 0 {
		bridge["mtu"] = cfg.MTU
	}
	b, err := json.MarshalIndent(map[string]any{
		"cniVersion": cniVersion,
		"name":       NetworkName,
		"plugins":    []any{bridge, map[string]any{"type": "loopback"}},
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("cni: render conflist: %w", err)
	}
	return append(b, '\n'), nil
}

// usable reports whether a is an address host-local may hand out in
// prefix: not the network address, the gateway or (IPv4) broadcast.
func usable(prefix netip.Prefix, a netip.Addr) bool {
	prefix = prefix.Masked()
	if !prefix.Contains(a) || a == prefix.Addr() || a == prefix.Addr().Next() {
		return false
	}
	if a.Is4() {
		last := a.As4()
		host := 32 - prefix.Bits()
		mask := uint32(1)<<host - 1
		v := uint32(last[0])<<24 | uint32(last[1])<<16 | uint32(last[2])<<8 | uint32(last[3])
		return v&mask != mask
	}
	return true
}
