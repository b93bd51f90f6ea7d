package scheduler

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Diagnosis says why a pod fits nowhere: how many nodes each filter
// reason rejected. It is what goes into the pod's PodScheduled=False
// condition and its FailedScheduling Event.
type Diagnosis struct {
	// NumNodes is the number of nodes in the snapshot.
	NumNodes int
	// Reasons counts the nodes rejected per reason; a node rejected for
	// several reasons (cpu and memory) counts under each.
	Reasons map[string]int
	// Unresolvable is true when every node failed with
	// UnschedulableAndUnresolvable (preemption would not help).
	Unresolvable bool
	// Err is set when a plugin failed rather than rejected.
	Err error
}

func (d *Diagnosis) add(s *Status) {
	if d.Reasons == nil {
		d.Reasons = make(map[string]int)
	}
	for _, r := range s.Reasons() {
		d.Reasons[r]++
	}
}

// Message renders the diagnosis as kube-scheduler does:
// "0/5000 nodes are available: 3000 Insufficient cpu, 2000 node(s) had
// untolerated taint {dedicated: gpu}." with reasons by count, then name.
func (d *Diagnosis) Message() string {
	if d.Err != nil {
		return fmt.Sprintf("scheduling failed: %v", d.Err)
	}
	type rc struct {
		reason string
		n      int
	}
	rs := make([]rc, 0, len(d.Reasons))
	for r, n := range d.Reasons {
		rs = append(rs, rc{r, n})
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].n != rs[j].n {
			return rs[i].n > rs[j].n
		}
		return rs[i].reason < rs[j].reason
	})
	var b strings.Builder
	b.WriteString("0/")
	b.WriteString(strconv.Itoa(d.NumNodes))
	b.WriteString(" nodes are available")
	if len(rs) == 0 {
		b.WriteString(".")
		return b.String()
	}
	b.WriteString(": ")
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(r.n))
		b.WriteByte(' ')
		b.WriteString(r.reason)
	}
	b.WriteString(".")
	return b.String()
}

// Error makes a Diagnosis usable as an error.
func (d *Diagnosis) Error() string { return d.Message() }
