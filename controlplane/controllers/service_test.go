package controllers

import (
	"log/slog"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/cloudprovider"
	"github.com/skiffhq/skiff/controlplane/store"
)

func TestServiceLBGetsAnIngressFromThePool(t *testing.T) {
	pool, err := cloudprovider.ParsePool("192.168.50.10-192.168.50.11")
	if err != nil {
		t.Fatal(err)
	}
	cloud, err := cloudprovider.New(cloudprovider.ProviderLocal, cloudprovider.Config{LoadBalancerPool: pool})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(st *store.Store) Controller {
		return &ServiceLB{Store: st, Log: slog.New(slog.DiscardHandler), Cloud: cloud, ClusterName: "test", Resync: 20 * time.Millisecond}
	})
	info, _ := api.ByKind(api.KindService)
	mk := func(name string, typ api.ServiceType) *api.Service {
		s := info.New().(*api.Service)
		s.Namespace, s.Name = "default", name
		s.Spec.Type = typ
		s.Spec.Ports = []api.ServicePort{{Port: 80, Protocol: api.ProtocolTCP}}
		o, err := e.st.Create(e.ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		return o.(*api.Service)
	}
	ingress := func(name string) string {
		o, err := e.st.Get(store.Key{Kind: api.KindService, Namespace: "default", Name: name})
		if err != nil {
			return ""
		}
		if in := o.(*api.Service).Status.LoadBalancer.Ingress; len(in) == 1 {
			return in[0].IP
		}
		return ""
	}
	a := mk("a", api.ServiceTypeLoadBalancer)
	mk("plain", api.ServiceTypeClusterIP)
	mk("b", api.ServiceTypeLoadBalancer)
	e.eventually("ingress for a and b", func() bool { return ingress("a") != "" && ingress("b") != "" })
	if ingress("a") == ingress("b") || ingress("plain") != "" {
		t.Fatalf("a=%s b=%s plain=%q", ingress("a"), ingress("b"), ingress("plain"))
	}
	// The pool is full: c waits; deleting a frees an address for c.
	mk("c", api.ServiceTypeLoadBalancer)
	freed := ingress("a")
	e.st.Delete(e.ctx, store.KeyOf(a), store.Preconditions{})
	// c is retried until it gets one.
	e.eventually("c gets the freed address", func() bool { return ingress("c") == freed })
}
