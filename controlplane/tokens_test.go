package controlplane

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/auth"
	"github.com/skiffhq/skiff/controlplane/store"
)

func TestTokens(t *testing.T) {
	ctx := context.Background()
	st := store.NewInMemory()
	t.Cleanup(st.Close)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := &tokens{st: st, caHash: func() string { return strings.Repeat("ab", 32) }, now: func() time.Time { return now }}

	agent, rec, err := ts.Create(ctx, TokenSpec{Usage: api.TokenUsageAgent, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rec.SecretHash == agent.Secret || strings.Contains(rec.SecretHash, agent.Secret) {
		t.Fatal("the secret is stored in clear")
	}
	if !strings.HasPrefix(agent.String(), "K10"+strings.Repeat("ab", 32)+"::") {
		t.Fatalf("token %s does not pin the CA", agent.Redacted())
	}
	view, _, err := ts.Create(ctx, TokenSpec{Usage: api.TokenUsageUser, Role: api.RoleView, Namespace: "team-a"})
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		id     string
		secret string
		usage  api.TokenUsage
		at     time.Time
		want   error
	}{
		{"good agent token", agent.ID, agent.Secret, api.TokenUsageAgent, now, nil},
		{"wrong secret", agent.ID, strings.Repeat("x", 16), api.TokenUsageAgent, now, ErrTokenInvalid},
		{"unknown id", "zzzzzz", agent.Secret, api.TokenUsageAgent, now, ErrTokenInvalid},
		{"wrong usage", agent.ID, agent.Secret, api.TokenUsageServer, now, ErrTokenInvalid},
		{"expired", agent.ID, agent.Secret, api.TokenUsageAgent, now.Add(time.Hour), ErrTokenExpired},
		{"no expiry", view.ID, view.Secret, api.TokenUsageUser, now.Add(1000 * time.Hour), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ts.Verify(c.id, c.secret, c.usage, c.at)
			if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), c.secret) {
				t.Fatal("an error shows the secret")
			}
		})
	}

	u, err := ts.VerifyBearer(view.ID, view.Secret, now)
	if err != nil || u.Role != auth.RoleView || u.Namespace != "team-a" {
		t.Fatalf("bearer: %+v %v", u, err)
	}
	if _, err := ts.VerifyBearer(agent.ID, agent.Secret, now); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("a join token must not authenticate API calls: %v", err)
	}

	if err := ts.Revoke(ctx, view.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.VerifyBearer(view.ID, view.Secret, now); !errors.Is(err, auth.ErrUnauthorized) {
		t.Fatalf("revoked token accepted: %v", err)
	}
	if err := ts.Revoke(ctx, view.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	if len(ts.List()) != 1 {
		t.Fatalf("list: %+v", ts.List())
	}
	for _, bad := range []TokenSpec{
		{Usage: "root"},
		{Usage: api.TokenUsageUser},
		{Usage: api.TokenUsageAgent, Role: api.RoleAdmin},
		{Usage: api.TokenUsageAgent, TTL: -time.Second},
	} {
		if _, _, err := ts.Create(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("create %+v: %v", bad, err)
		}
	}
}
