package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
)

// Sentinel errors. Each failure wraps exactly one of them; the API server
// maps them to HTTP codes with errors.Is.
var (
	// ErrAnonymous: the request carries no credential (401, except for the
	// public paths).
	ErrAnonymous = errors.New("anonymous request")
	// ErrUnauthorized: a credential was presented but is malformed, unknown,
	// expired or revoked (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: an authenticated user may not do this (403).
	ErrForbidden = errors.New("forbidden")
	// ErrTooManyRequests: a rate or concurrency limit was hit (429).
	ErrTooManyRequests = errors.New("too many requests")
)

// maxBearerLen bounds the token part of an Authorization header; real
// tokens are far shorter, and nothing longer is worth hashing.
const maxBearerLen = 512

// TokenVerifier checks a bearer token against the token store: the secret
// against its stored hash (in constant time), expiry at now, revocation.
// Failures wrap ErrUnauthorized and must not contain the secret; any other
// error is an internal failure (the store is unavailable) and is returned
// as it is. Implementations must be safe for concurrent use.
type TokenVerifier interface {
	VerifyBearer(id, secret string, now time.Time) (User, error)
}

// Authenticator turns a request's credential into a User.
type Authenticator struct {
	tokens TokenVerifier
	now    func() time.Time
}

// NewAuthenticator returns an Authenticator that verifies bearer tokens with
// tokens (nil: bearer tokens are rejected) at the time now returns (nil:
// time.Now).
func NewAuthenticator(tokens TokenVerifier, now func() time.Time) *Authenticator {
	if now == nil {
		now = time.Now
	}
	return &Authenticator{tokens: tokens, now: now}
}

// Authenticate identifies the sender of r:
//
//   - a client certificate verified by the TLS handshake (r.TLS has verified
//     chains): User{Name: CN, Groups: O, Source: SourceCert};
//   - else an "Authorization: Bearer <id>.<secret>" header, checked by the
//     TokenVerifier: its User with Source SourceToken;
//   - else ErrAnonymous.
//
// A malformed Authorization header is ErrUnauthorized, never anonymous, so a
// broken client sees why it is refused. Error messages never contain the
// secret.
func (a *Authenticator) Authenticate(r *http.Request) (User, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		leaf := r.TLS.VerifiedChains[0][0]
		if leaf.Subject.CommonName == "" {
			return User{}, fmt.Errorf("%w: client certificate has no common name", ErrUnauthorized)
		}
		return User{
			Name:   leaf.Subject.CommonName,
			Groups: append([]string(nil), leaf.Subject.Organization...),
			Source: SourceCert,
		}, nil
	}
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return User{}, ErrAnonymous
	case len(values) > 1:
		return User{}, fmt.Errorf("%w: %d Authorization headers: send one", ErrUnauthorized, len(values))
	}
	id, secret, err := parseBearer(values[0])
	if err != nil {
		return User{}, err
	}
	if a.tokens == nil {
		return User{}, fmt.Errorf("%w: bearer tokens are not accepted by this server", ErrUnauthorized)
	}
	u, err := a.tokens.VerifyBearer(id, secret, a.now())
	if err != nil {
		return User{}, err
	}
	u.Source = SourceToken
	if u.Name == "" {
		// Every credential needs a name: rate limits and audit key on it.
		u.Name = "token:" + id
	}
	return u, nil
}

// parseBearer splits "Bearer <id>.<secret>". Its errors name what is wrong
// without quoting the header, which holds the secret.
func parseBearer(h string) (id, secret string, err error) {
	scheme, token, found := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// Only a known scheme name is quoted: a bare token in the header
		// would otherwise be echoed as the "scheme".
		for _, known := range []string{"Basic", "Digest", "Negotiate", "NTLM", "Token", "Bootstrap"} {
			if found && strings.EqualFold(scheme, known) {
				return "", "", fmt.Errorf("%w: unsupported authorization scheme %s: want \"Bearer <id>.<secret>\"", ErrUnauthorized, known)
			}
		}
		return "", "", fmt.Errorf("%w: malformed Authorization header: want \"Bearer <id>.<secret>\"", ErrUnauthorized)
	}
	token = strings.TrimSpace(token)
	switch {
	case !found || token == "":
		return "", "", fmt.Errorf("%w: empty bearer token: want \"Bearer <id>.<secret>\"", ErrUnauthorized)
	case len(token) > maxBearerLen:
		return "", "", fmt.Errorf("%w: bearer token longer than %d bytes", ErrUnauthorized, maxBearerLen)
	case strings.Contains(token, "::"):
		return "", "", fmt.Errorf("%w: bearer token looks like a join token (K10<hash>::<id>.<secret>): send only <id>.<secret>", ErrUnauthorized)
	case !printable(token) || strings.ContainsRune(token, ' '):
		return "", "", fmt.Errorf("%w: bearer token contains spaces or control characters", ErrUnauthorized)
	}
	id, secret, found = strings.Cut(token, ".")
	if !found || id == "" || secret == "" {
		return "", "", fmt.Errorf("%w: malformed bearer token: want <id>.<secret>", ErrUnauthorized)
	}
	return id, secret, nil
}

func printable(s string) bool {
	for _, r := range s {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
