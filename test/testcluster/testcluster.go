// Package testcluster starts a real one-server control plane in-process
// (controlplane.Run: Raft on disk, TLS, tokens, controllers, scheduler) on
// 127.0.0.1 for the tests of packages that talk to it only through the API
// and must not import it themselves (nodeagent). It is test support:
// nothing but _test.go files imports it.
package testcluster

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/client"
	"github.com/skiffhq/skiff/controlplane"
	"github.com/skiffhq/skiff/controlplane/store"
)

// Cluster is a running server.
type Cluster struct {
	// URL is the API's base URL (https://127.0.0.1:port).
	URL string
	// Admin is a client with the admin credential.
	Admin *client.Client
	// AdminConfig is admin.conf.
	AdminConfig client.Config
}

// Options adjust the server.
type Options struct {
	// NodeGracePeriod: how long a node may stay silent (default 10s).
	NodeGracePeriod time.Duration
	// Network is the cluster's address plan (zero: the default).
	Network store.NetworkConfig
	Logger  *slog.Logger
}

// Start runs a bootstrap server in a temporary directory until the test
// ends, and waits until it is ready.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	dir := t.TempDir()
	ready := make(chan struct{})
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := controlplane.Config{DataDir: dir, NodeID: "s1", RaftAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:0",
		Bootstrap: true, Ready: ready, Logger: log, NodeGracePeriod: opts.NodeGracePeriod, Network: opts.Network}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- controlplane.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("server exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server not ready within 30s")
	}
	conf, err := client.LoadConfig(filepath.Join(dir, "admin.conf"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(*conf, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return &Cluster{URL: conf.Servers[0], Admin: admin, AdminConfig: *conf}
}

// AgentToken creates an agent join token.
func (c *Cluster) AgentToken(t testing.TB) api.JoinToken {
	t.Helper()
	ti, err := c.Admin.CreateToken(context.Background(), client.TokenRequest{Usage: string(api.TokenUsageAgent), TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := api.ParseJoinToken(ti.Token)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// NodeClient joins node name with an agent token and returns a client
// with its credential (system:node:<name>).
func (c *Cluster) NodeClient(t testing.TB, name string) *client.Client {
	t.Helper()
	j, err := client.NewJoiner(context.Background(), []string{c.URL}, c.AgentToken(t))
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	cfg, err := j.JoinNode(context.Background(), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := client.New(cfg, client.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// Eventually polls cond every 10ms until it holds, failing the test after
// timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
