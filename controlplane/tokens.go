package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/auth"
	"github.com/skiffhq/skiff/controlplane/store"
)

// Token errors.
var (
	ErrTokenInvalid = errors.New("invalid token")
	ErrTokenExpired = errors.New("token expired")
)

// TokenRecord is a token as the replicated store keeps it: the secret only
// as its hash.
type TokenRecord struct {
	ID          string         `json:"id"`
	SecretHash  string         `json:"secretHash"`
	Usage       api.TokenUsage `json:"usage"`
	Role        api.TokenRole  `json:"role,omitempty"`
	Namespace   string         `json:"namespace,omitempty"`
	Description string         `json:"description,omitempty"`
	Created     time.Time      `json:"created"`
	Expires     *time.Time     `json:"expires,omitempty"`
}

// TokenSpec is what a new token is for.
type TokenSpec struct {
	Usage       api.TokenUsage
	Role        api.TokenRole // user tokens only
	Namespace   string        // user tokens only: confine the role
	TTL         time.Duration // 0: never expires
	Description string
}

// tokens manages join and role tokens in the store's tokens table.
type tokens struct {
	st     *store.Store
	caHash func() string
	now    func() time.Time
}

// Create makes a token and returns it (the only time its secret exists in
// clear) with its record.
func (t *tokens) Create(ctx context.Context, spec TokenSpec) (api.JoinToken, TokenRecord, error) {
	if !spec.Usage.Valid() {
		return api.JoinToken{}, TokenRecord{}, fmt.Errorf("%w: usage %q: want server, agent or user", store.ErrInvalid, spec.Usage)
	}
	if spec.Usage == api.TokenUsageUser {
		if !spec.Role.Valid() {
			return api.JoinToken{}, TokenRecord{}, fmt.Errorf("%w: a user token needs a role (admin, edit or view), not %q", store.ErrInvalid, spec.Role)
		}
	} else if spec.Role != "" || spec.Namespace != "" {
		return api.JoinToken{}, TokenRecord{}, fmt.Errorf("%w: role and namespace apply to user tokens only", store.ErrInvalid)
	}
	if spec.TTL < 0 {
		return api.JoinToken{}, TokenRecord{}, fmt.Errorf("%w: ttl %v is negative", store.ErrInvalid, spec.TTL)
	}
	tok, err := api.NewJoinToken(t.caHash())
	if err != nil {
		return api.JoinToken{}, TokenRecord{}, err
	}
	now := t.now().UTC()
	rec := TokenRecord{ID: tok.ID, SecretHash: api.HashTokenSecret(tok.Secret), Usage: spec.Usage, Role: spec.Role,
		Namespace: spec.Namespace, Description: spec.Description, Created: now}
	if spec.TTL > 0 {
		exp := now.Add(spec.TTL)
		rec.Expires = &exp
	}
	if _, taken := t.st.GetSystem(store.TableTokens, rec.ID); taken {
		return api.JoinToken{}, TokenRecord{}, fmt.Errorf("token id %s collided; try again", rec.ID)
	}
	b, _ := json.Marshal(rec)
	if err := t.st.PutSystem(ctx, store.TableTokens, rec.ID, b); err != nil {
		return api.JoinToken{}, TokenRecord{}, err
	}
	return tok, rec, nil
}

// List returns every token record, oldest first.
func (t *tokens) List() []TokenRecord {
	var out []TokenRecord
	for _, v := range t.st.ListSystem(store.TableTokens) {
		var r TokenRecord
		if json.Unmarshal(v, &r) == nil {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// Revoke deletes a token.
func (t *tokens) Revoke(ctx context.Context, id string) error {
	err := t.st.DeleteSystem(ctx, store.TableTokens, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: token %q not found", store.ErrNotFound, id)
	}
	return err
}

// Verify checks a token's secret, expiry and usage. Errors never include
// the secret.
func (t *tokens) Verify(id, secret string, usage api.TokenUsage, now time.Time) (TokenRecord, error) {
	v, ok := t.st.GetSystem(store.TableTokens, id)
	var rec TokenRecord
	if !ok || json.Unmarshal(v, &rec) != nil || !api.TokenSecretMatches(rec.SecretHash, secret) {
		// Unknown id and wrong secret look the same to the caller.
		return TokenRecord{}, fmt.Errorf("%w: unknown token or wrong secret (revoked tokens are deleted)", ErrTokenInvalid)
	}
	if rec.Expires != nil && !now.Before(*rec.Expires) {
		return TokenRecord{}, fmt.Errorf("%w: token %s expired at %s", ErrTokenExpired, id, rec.Expires.Format(time.RFC3339))
	}
	if rec.Usage != usage {
		return TokenRecord{}, fmt.Errorf("%w: token %s is for %s, not %s", ErrTokenInvalid, id, rec.Usage, usage)
	}
	return rec, nil
}

// VerifyBearer implements auth.TokenVerifier: user tokens authenticate as
// "token:<id>" with their role.
func (t *tokens) VerifyBearer(id, secret string, now time.Time) (auth.User, error) {
	rec, err := t.Verify(id, secret, api.TokenUsageUser, now)
	if err != nil {
		return auth.User{}, fmt.Errorf("%w: %w", auth.ErrUnauthorized, err)
	}
	return auth.User{Name: "token:" + rec.ID, Source: auth.SourceToken, Role: auth.Role(rec.Role), Namespace: rec.Namespace}, nil
}
