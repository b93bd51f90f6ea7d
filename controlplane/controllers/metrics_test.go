package controllers

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// TestControllerMetrics checks that a controller run by Run under
// WithMetrics records its syncs under its own name.
func TestControllerMetrics(t *testing.T) {
	st := newSchedStore(t)
	defer st.Close()
	m := NewMetrics(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(WithMetrics(context.Background(), m))
	done := make(chan struct{})
	go func() {
		Run(ctx, slog.New(slog.DiscardHandler), &Endpoints{Store: st, Log: slog.New(slog.DiscardHandler)})
		close(done)
	}()
	defer func() { cancel(); <-done }()
	info, _ := api.ByKind(api.KindService)
	svc := info.New().(*api.Service)
	svc.Namespace, svc.Name = "default", "web"
	svc.Spec.Selector = map[string]string{"app": "web"}
	svc.Spec.Ports = []api.ServicePort{{Port: 80, Protocol: api.ProtocolTCP}}
	api.Default(svc)
	if _, err := st.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		if _, err := st.Get(store.Key{Kind: api.KindEndpoints, Namespace: "default", Name: "web"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("endpoints not created")
		}
	}
	var d dto.Metric
	if err := m.Syncs.WithLabelValues("endpoints", "success").Write(&d); err != nil || d.GetCounter().GetValue() < 1 {
		t.Fatalf("endpoints syncs recorded: %v %v", d.GetCounter().GetValue(), err)
	}
	h, _ := m.SyncDuration.GetMetricWithLabelValues("endpoints")
	if err := h.(prometheus.Histogram).Write(&d); err != nil || d.GetHistogram().GetSampleCount() < 1 {
		t.Fatalf("endpoints sync durations recorded: %v %v", d.GetHistogram().GetSampleCount(), err)
	}
}
