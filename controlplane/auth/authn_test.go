package auth

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeTokens is an in-memory TokenVerifier: id -> secret and user.
type fakeTokens struct {
	secrets map[string]string
	users   map[string]User
	err     error // returned for every call when set (a store failure)
	gotNow  time.Time
}

var _ TokenVerifier = (*fakeTokens)(nil)

func (f *fakeTokens) VerifyBearer(id, secret string, now time.Time) (User, error) {
	f.gotNow = now
	if f.err != nil {
		return User{}, f.err
	}
	s, ok := f.secrets[id]
	if !ok || s != secret {
		return User{}, fmt.Errorf("%w: token %s is unknown, expired or revoked", ErrUnauthorized, id)
	}
	return f.users[id], nil
}

const testSecret = "0123456789abcdef"

func newTestAuthenticator(now time.Time) (*Authenticator, *fakeTokens) {
	tokens := &fakeTokens{
		secrets: map[string]string{"abcdef": testSecret, "noname": testSecret},
		users: map[string]User{
			"abcdef": {Name: "ci", Role: RoleEdit, Namespace: "team-a"},
			"noname": {Role: RoleView},
		},
	}
	return NewAuthenticator(tokens, func() time.Time { return now }), tokens
}

func withCert(cn string, orgs ...string) *tls.ConnectionState {
	c := &x509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: orgs}}
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
}

func TestAuthenticate(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	unverified := withCert("mallory", GroupMasters)
	unverified.VerifiedChains = nil
	tests := []struct {
		name    string
		tls     *tls.ConnectionState
		headers []string
		want    User
		wantErr error
		errHas  string
	}{
		{name: "admin cert", tls: withCert("admin", GroupMasters), want: User{Name: "admin", Groups: []string{GroupMasters}, Source: SourceCert}},
		{name: "node cert", tls: withCert("system:node:a", GroupNodes), want: User{Name: "system:node:a", Groups: []string{GroupNodes}, Source: SourceCert}},
		{name: "cert wins over bearer", tls: withCert("admin", GroupMasters), headers: []string{"Bearer abcdef." + testSecret}, want: User{Name: "admin", Groups: []string{GroupMasters}, Source: SourceCert}},
		{name: "cert without CN", tls: withCert("", GroupMasters), wantErr: ErrUnauthorized, errHas: "no common name"},
		{name: "unverified cert is ignored", tls: unverified, wantErr: ErrAnonymous},
		{name: "bearer", headers: []string{"Bearer abcdef." + testSecret}, want: User{Name: "ci", Role: RoleEdit, Namespace: "team-a", Source: SourceToken}},
		{name: "bearer scheme case-insensitive", headers: []string{"bearer abcdef." + testSecret}, want: User{Name: "ci", Role: RoleEdit, Namespace: "team-a", Source: SourceToken}},
		{name: "bearer without user name", headers: []string{"Bearer noname." + testSecret}, want: User{Name: "token:noname", Role: RoleView, Source: SourceToken}},
		{name: "anonymous", wantErr: ErrAnonymous},
		{name: "wrong secret", headers: []string{"Bearer abcdef.wrongsecret"}, wantErr: ErrUnauthorized, errHas: "unknown, expired or revoked"},
		{name: "basic auth", headers: []string{"Basic " + testSecret}, wantErr: ErrUnauthorized, errHas: "unsupported authorization scheme Basic"},
		{name: "bare token", headers: []string{"abcdef." + testSecret}, wantErr: ErrUnauthorized, errHas: "malformed Authorization header"},
		{name: "empty bearer", headers: []string{"Bearer "}, wantErr: ErrUnauthorized, errHas: "empty bearer token"},
		{name: "bearer alone", headers: []string{"Bearer"}, wantErr: ErrUnauthorized, errHas: "empty bearer token"},
		{name: "no dot", headers: []string{"Bearer " + testSecret}, wantErr: ErrUnauthorized, errHas: "want <id>.<secret>"},
		{name: "empty id", headers: []string{"Bearer ." + testSecret}, wantErr: ErrUnauthorized, errHas: "want <id>.<secret>"},
		{name: "empty secret", headers: []string{"Bearer abcdef."}, wantErr: ErrUnauthorized, errHas: "want <id>.<secret>"},
		{name: "join token", headers: []string{"Bearer K10deadbeef::abcdef." + testSecret}, wantErr: ErrUnauthorized, errHas: "looks like a join token"},
		{name: "space inside", headers: []string{"Bearer abcdef. " + testSecret}, wantErr: ErrUnauthorized, errHas: "spaces or control characters"},
		{name: "control character", headers: []string{"Bearer abcdef.\x01" + testSecret}, wantErr: ErrUnauthorized, errHas: "spaces or control characters"},
		{name: "too long", headers: []string{"Bearer abcdef." + strings.Repeat("x", maxBearerLen)}, wantErr: ErrUnauthorized, errHas: "longer than"},
		{name: "two headers", headers: []string{"Bearer abcdef." + testSecret, "Bearer other." + testSecret}, wantErr: ErrUnauthorized, errHas: "2 Authorization headers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newTestAuthenticator(now)
			r := httptest.NewRequest("GET", "/api/v1/pods", nil)
			r.TLS = tt.tls
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			got, err := a.Authenticate(r)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("err = %q, want it to mention %q", err, tt.errHas)
				}
				if strings.Contains(err.Error(), testSecret) {
					t.Errorf("err = %q echoes the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got.Name != tt.want.Name || got.Source != tt.want.Source || got.Role != tt.want.Role ||
				got.Namespace != tt.want.Namespace || !slices.Equal(got.Groups, tt.want.Groups) {
				t.Errorf("user = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAuthenticatePassesTimeAndStoreErrors(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	a, tokens := newTestAuthenticator(now)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer abcdef."+testSecret)
	if _, err := a.Authenticate(r); err != nil {
		t.Fatal(err)
	}
	if !tokens.gotNow.Equal(now) {
		t.Errorf("verifier got now = %v, want the injected %v", tokens.gotNow, now)
	}

	// A store failure is not a bad credential: it reaches the caller as is
	// (500/503), not as ErrUnauthorized.
	storeDown := errors.New("store unavailable")
	tokens.err = storeDown
	_, err := a.Authenticate(r)
	if !errors.Is(err, storeDown) || errors.Is(err, ErrUnauthorized) {
		t.Errorf("err = %v, want the store's error unchanged", err)
	}
}

func TestAuthenticateWithoutVerifier(t *testing.T) {
	a := NewAuthenticator(nil, nil)
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer abcdef."+testSecret)
	if _, err := a.Authenticate(r); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("err = %v, want ErrUnauthorized", err)
	}
}
