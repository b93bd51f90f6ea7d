package lab

import (
	"context"
	"os/exec"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
)

// Status reports every machine: its daemon running, its cable, and what
// the cluster says of it (best effort: a lab without a quorum still gets
// its processes and cables reported).
func (l *Lab) Status(ctx context.Context) []MachineStatus {
	detail := map[string]string{}
	if c, err := l.Client(client.WithTimeout(2 * time.Second)); err == nil {
		if ms, err := c.Members(ctx); err == nil {
			for _, m := range ms.Members {
				role := "follower"
				if m.ID == ms.Leader {
					role = "leader"
				}
				detail[m.ID] = role
			}
		} else {
			for _, s := range l.ByRole(RoleServer) {
				detail[s.Name] = "no answer through the forwarder: " + err.Error()
			}
		}
		if list, err := c.List(ctx, api.KindNode, client.ListOptions{Stale: true}); err == nil {
			for _, o := range list.Items {
				n := o.(*api.Node)
				d := "NotReady"
				for _, cond := range n.Status.Conditions {
					if cond.Type == api.NodeReady {
						if cond.Status == api.ConditionTrue {
							d = "Ready"
						} else if cond.Reason != "" {
							d = "NotReady (" + cond.Reason + ")"
						}
					}
				}
				if n.Spec.PodCIDR != "" {
					d += ", pods " + n.Spec.PodCIDR
				}
				detail[n.Name] = d
			}
		}
	}
	var out []MachineStatus
	for _, m := range l.Machines {
		out = append(out, MachineStatus{Machine: m, Running: m.Proc.Alive(), Cut: l.isCut(m), Detail: detail[m.Name]})
	}
	return out
}

// isCut reports whether a machine's LAN-side veth end is down.
func (l *Lab) isCut(m *Machine) bool {
	out, err := exec.Command("ip", "-n", l.LAN, "-o", "link", "show", m.Name).Output()
	if err != nil {
		return false
	}
	s := string(out)
	i, j := strings.Index(s, "<"), strings.Index(s, ">")
	if i < 0 || j < i {
		return false
	}
	for _, f := range strings.Split(s[i+1:j], ",") {
		if f == "UP" {
			return false
		}
	}
	return true
}
