package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// TokenRequest asks for a new token (skiff token create).
type TokenRequest struct {
	Usage       string `json:"usage"` // server, agent or user
	Role        string `json:"role,omitempty"`
	Namespace   string `json:"namespace,omitempty"`
	TTL         string `json:"ttl,omitempty"` // Go duration; "" never expires
	Description string `json:"description,omitempty"`
}

// TokenInfo describes a token; Token (the secret) is set only in the
// answer to a create.
type TokenInfo struct {
	ID          string     `json:"id"`
	Usage       string     `json:"usage"`
	Role        string     `json:"role,omitempty"`
	Namespace   string     `json:"namespace,omitempty"`
	Description string     `json:"description,omitempty"`
	Created     time.Time  `json:"created"`
	Expires     *time.Time `json:"expires,omitempty"`
	Token       string     `json:"token,omitempty"`
}

// CreateToken creates a join or role token. The answer holds the secret:
// it is not shown again.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (*TokenInfo, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var t TokenInfo
	if err := c.call(ctx, http.MethodPost, "/skiff/v1/tokens", b, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ListTokens lists tokens (without secrets).
func (c *Client) ListTokens(ctx context.Context) ([]TokenInfo, error) {
	var l struct {
		Items []TokenInfo `json:"items"`
	}
	if err := c.call(ctx, http.MethodGet, "/skiff/v1/tokens", nil, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// RevokeToken deletes a token: joins and requests using it fail from then.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, "/skiff/v1/tokens/"+url.PathEscape(id), nil, nil)
}
