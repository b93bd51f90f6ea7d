package controllers

import (
	"log/slog"
	"testing"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

func daemonSetCtrl(st *store.Store) Controller {
	return &DaemonSet{Store: st, Log: slog.New(slog.DiscardHandler)}
}

func TestDaemonSetOnePodPerEligibleNode(t *testing.T) {
	e := newEnv(t, daemonSetCtrl)
	nodeInfo, _ := api.ByKind(api.KindNode)
	mkNode := func(name string, labels map[string]string, taints ...api.Taint) {
		n := nodeInfo.New().(*api.Node)
		n.Name, n.Labels, n.Spec.Taints = name, labels, taints
		if _, err := e.st.Create(e.ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	mkNode("a", map[string]string{"disk": "ssd"})
	mkNode("b", map[string]string{"disk": "ssd"}, api.Taint{Key: "dedicated", Value: "gpu", Effect: api.TaintEffectNoSchedule})
	mkNode("c", map[string]string{"disk": "hdd"})
	mkNode("d", map[string]string{"disk": "ssd"}, api.Taint{Key: TaintNodeUnreachable, Effect: api.TaintEffectNoExecute})

	info, _ := api.ByKind(api.KindDaemonSet)
	ds := info.New().(*api.DaemonSet)
	ds.Namespace, ds.Name = "default", "agent"
	ds.Spec.Selector = &api.LabelSelector{MatchLabels: map[string]string{"app": "agent"}}
	ds.Spec.Template.Labels = map[string]string{"app": "agent"}
	ds.Spec.Template.Spec.NodeSelector = map[string]string{"disk": "ssd"}
	ds.Spec.Template.Spec.Containers = []api.Container{{Name: "c", Image: "agent:1"}}
	api.Default(ds)
	if _, err := e.st.Create(e.ctx, ds); err != nil {
		t.Fatal(err)
	}
	onNodes := func() map[string]int {
		out := map[string]int{}
		for _, p := range e.pods() {
			if p.DeletionTimestamp == nil { // a pod being deleted is leaving
				out[p.Spec.NodeName]++
			}
		}
		return out
	}
	// a (selected), d (unreachable is tolerated by daemons); not b (taint),
	// not c (selector).
	e.eventually("daemons on a and d", func() bool {
		n := onNodes()
		return len(n) == 2 && n["a"] == 1 && n["d"] == 1
	})
	// A new matching node gets one; relabelling a node away removes it.
	mkNode("e", map[string]string{"disk": "ssd"})
	e.eventually("a daemon on the new node", func() bool { return onNodes()["e"] == 1 })
	o, _ := e.st.Get(store.Key{Kind: api.KindNode, Name: "a"})
	n := api.DeepCopy(o.(*api.Node))
	n.Labels = map[string]string{"disk": "hdd"}
	e.st.Update(e.ctx, n)
	e.eventually("the daemon leaves a relabelled node", func() bool { _, ok := onNodes()["a"]; return !ok })
	e.eventually("status", func() bool {
		o, _ := e.st.Get(store.KeyOf(ds))
		s := o.(*api.DaemonSet).Status
		return s.DesiredNumberScheduled == 2 && s.CurrentNumberScheduled == 2
	})
}
