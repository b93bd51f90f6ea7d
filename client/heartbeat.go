package client

import (
	"context"
	"net/http"
	"net/url"
)

// pathHeartbeats is the API server's auth.PathHeartbeats.
const pathHeartbeats = "/skiff/v1/heartbeats"

// Heartbeat tells the control plane that node's agent is alive (POST
// /skiff/v1/heartbeats/<node>). The leader keeps heartbeats in memory: they
// cost no Raft write, and a node silent for the grace period is marked
// unreachable. A node credential may send only its own. A beat is safe to
// repeat: one that fails on a server is sent again to the next.
func (c *Client) Heartbeat(ctx context.Context, node string) error {
	return c.callAs(ctx, http.MethodPost, pathHeartbeats+"/"+url.PathEscape(node), nil, nil, true)
}
