package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Join tokens, in the k3s/kubeadm style:
//
//	K10<sha256 of the CA certificate>::<id>.<secret>   full form, pins the CA
//	<id>.<secret>                                       bare form, no CA pin
//
// The id (6 characters) and secret (16 characters) are lower-case [a-z0-9],
// the shape of a kubeadm bootstrap token. The id is public: it names the
// token in `skiff token list` and in logs. The secret is sent only after the
// joiner has checked the server's CA against the pinned hash, and the server
// stores only HashTokenSecret of it.

const (
	joinTokenPrefix    = "K10"
	joinTokenSeparator = "::"
	caHashLength       = sha256.Size * 2
	tokenIDLength      = 6
	tokenSecretLength  = 16
	tokenAlphabet      = "abcdefghijklmnopqrstuvwxyz0123456789"
	joinTokenShape     = "K10<sha256 of the CA>::<id>.<secret> or <id>.<secret>"
)

// ErrInvalidJoinToken is wrapped by every ParseJoinToken and NewJoinToken
// error; check it with errors.Is.
var ErrInvalidJoinToken = errors.New("invalid join token")

// JoinToken is a parsed join token. CAHash is the lower-case hex SHA-256 of
// the cluster CA certificate's DER (empty for a bare token), ID names the
// token and Secret authenticates it.
type JoinToken struct {
	CAHash string
	ID     string
	Secret string
}

// joinTokenError reports why a token does not parse. Got is the input with
// the secret masked: errors end up in logs and terminals, the secret must not.
type joinTokenError struct {
	got    string
	reason string
}

func (e *joinTokenError) Error() string {
	return "token: want " + joinTokenShape + ", got " + strconv.Quote(e.got) + ": " + e.reason
}

func (e *joinTokenError) Unwrap() error { return ErrInvalidJoinToken }

// ParseJoinToken parses the full or the bare form of a join token.
// Surrounding white space (a trailing newline from a token file) is ignored.
// The CA hash is accepted in either case and normalised to lower case, since
// it is the same value and tools print it both ways; the id and secret must
// be lower case, as kubeadm requires.
func ParseJoinToken(s string) (JoinToken, error) {
	s = strings.TrimSpace(s)
	fail := func(reason string) (JoinToken, error) {
		return JoinToken{}, &joinTokenError{got: redactTokenInput(s), reason: reason}
	}
	if s == "" {
		return fail("empty token")
	}
	var t JoinToken
	rest := s
	if head, tail, ok := strings.Cut(s, joinTokenSeparator); ok {
		if !strings.HasPrefix(head, joinTokenPrefix) {
			return fail("the part before " + strconv.Quote(joinTokenSeparator) + " must start with " + joinTokenPrefix)
		}
		if msg := caHashProblem(head[len(joinTokenPrefix):]); msg != "" {
			return fail(msg)
		}
		t.CAHash = strings.ToLower(head[len(joinTokenPrefix):])
		rest = tail
	} else if strings.HasPrefix(s, joinTokenPrefix) || strings.Contains(s, ":") {
		return fail("the CA hash and the credentials must be separated by " + strconv.Quote(joinTokenSeparator))
	}
	id, secret, ok := strings.Cut(rest, ".")
	if !ok {
		return fail("the id and the secret must be separated by \".\"")
	}
	if msg := tokenPartProblem("id", id, tokenIDLength); msg != "" {
		return fail(msg)
	}
	if msg := tokenPartProblem("secret", secret, tokenSecretLength); msg != "" {
		return fail(msg)
	}
	t.ID, t.Secret = id, secret
	return t, nil
}

// NewJoinToken returns a token with a random id and secret that pins caHash
// (the CA's Hash; empty for a bare token).
func NewJoinToken(caHash string) (JoinToken, error) {
	if caHash != "" {
		if msg := caHashProblem(caHash); msg != "" {
			return JoinToken{}, fmt.Errorf("token: %s: %w", msg, ErrInvalidJoinToken)
		}
	}
	id, err := randomTokenString(tokenIDLength)
	if err != nil {
		return JoinToken{}, err
	}
	secret, err := randomTokenString(tokenSecretLength)
	if err != nil {
		return JoinToken{}, err
	}
	return JoinToken{CAHash: strings.ToLower(caHash), ID: id, Secret: secret}, nil
}

// String returns the full form, or the bare form when CAHash is empty. It
// contains the secret: use Redacted for anything that is logged or shown.
func (t JoinToken) String() string {
	if t.CAHash == "" {
		return t.ID + "." + t.Secret
	}
	return joinTokenPrefix + t.CAHash + joinTokenSeparator + t.ID + "." + t.Secret
}

// Redacted returns the token with the secret masked and the CA hash
// shortened, e.g. "K10abcd…::abc123.****************".
func (t JoinToken) Redacted() string {
	masked := t.ID + "." + strings.Repeat("*", tokenSecretLength)
	if t.CAHash == "" {
		return masked
	}
	h := t.CAHash
	if len(h) > 4 {
		h = h[:4] + "…"
	}
	return joinTokenPrefix + h + joinTokenSeparator + masked
}

// HashTokenSecret returns the hex SHA-256 of a token secret, the form in
// which servers store it. A fast unsalted hash is enough here, unlike for
// passwords: secrets are 16 characters drawn uniformly from 36 (~82 bits),
// far beyond offline brute force, so a slow KDF would buy nothing.
func HashTokenSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// TokenSecretMatches reports whether secret hashes to hash (a value from
// HashTokenSecret), comparing in constant time.
func TokenSecretMatches(hash, secret string) bool {
	return subtle.ConstantTimeCompare([]byte(hash), []byte(HashTokenSecret(secret))) == 1
}

// TokenUsage says what a token may be used for.
type TokenUsage string

const (
	// TokenUsageServer joins a server to the Raft group.
	TokenUsageServer TokenUsage = "server"
	// TokenUsageAgent joins an agent, which then gets a node certificate.
	TokenUsageAgent TokenUsage = "agent"
	// TokenUsageUser is a bearer credential for a user, bound to a TokenRole.
	TokenUsageUser TokenUsage = "user"
)

// Valid reports whether u is one of the TokenUsage constants.
func (u TokenUsage) Valid() bool {
	switch u {
	case TokenUsageServer, TokenUsageAgent, TokenUsageUser:
		return true
	}
	return false
}

// TokenRole is the role a user token is bound to, cluster-wide or in one
// namespace.
type TokenRole string

const (
	// RoleAdmin may do everything, including managing tokens.
	RoleAdmin TokenRole = "admin"
	// RoleEdit may read and write workloads but not tokens.
	RoleEdit TokenRole = "edit"
	// RoleView may only read.
	RoleView TokenRole = "view"
)

// Valid reports whether r is one of the TokenRole constants.
func (r TokenRole) Valid() bool {
	switch r {
	case RoleAdmin, RoleEdit, RoleView:
		return true
	}
	return false
}

func caHashProblem(h string) string {
	if len(h) != caHashLength {
		return "CA hash must be " + strconv.Itoa(caHashLength) + " hex characters (sha256), got " + strconv.Itoa(len(h))
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return "CA hash must be hex, got " + strconv.QuoteRune(rune(c)) + " at position " + strconv.Itoa(i)
		}
	}
	return ""
}

// tokenPartProblem never quotes the offending character: the part may be
// the secret.
func tokenPartProblem(what, s string, n int) string {
	if len(s) != n {
		return what + " must be " + strconv.Itoa(n) + " characters [a-z0-9], got " + strconv.Itoa(len(s))
	}
	if !isTokenChars(s) {
		return what + " must be " + strconv.Itoa(n) + " characters [a-z0-9], got other characters"
	}
	return ""
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func isTokenChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(tokenAlphabet, rune(s[i])) {
			return false
		}
	}
	return true
}

// redactTokenInput shows as much of a malformed token as is safe: the part
// before "::" when it looks like a CA hash (public; shortened) and a
// well-formed id; whatever could be the secret becomes stars.
func redactTokenInput(s string) string {
	var b strings.Builder
	rest := s
	if head, tail, ok := strings.Cut(s, joinTokenSeparator); ok {
		shown := stars(len(head))
		if h, ok := strings.CutPrefix(head, joinTokenPrefix); ok && isHex(h) {
			shown = head
			if len(h) > 4 {
				shown = joinTokenPrefix + h[:4] + "…"
			}
		}
		b.WriteString(shown)
		b.WriteString(joinTokenSeparator)
		rest = tail
	}
	id, secret, ok := strings.Cut(rest, ".")
	if !ok {
		b.WriteString(stars(len(rest)))
		return b.String()
	}
	if len(id) <= tokenIDLength && isTokenChars(id) {
		b.WriteString(id)
	} else {
		b.WriteString(stars(len(id)))
	}
	b.WriteString(".")
	b.WriteString(stars(len(secret)))
	return b.String()
}

// stars masks n bytes, capped so a pasted blob does not flood the error.
func stars(n int) string {
	const max = 32
	if n > max {
		return strings.Repeat("*", max) + "…"
	}
	return strings.Repeat("*", n)
}

// randomTokenString draws n characters uniformly from tokenAlphabet.
func randomTokenString(n int) (string, error) {
	// Rejection sampling: 252 is the largest multiple of 36 below 256, so
	// bytes >= 252 are redrawn to avoid bias.
	const limit = 256 - 256%len(tokenAlphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			if int(c) < limit && len(out) < n {
				out = append(out, tokenAlphabet[int(c)%len(tokenAlphabet)])
			}
		}
	}
	return string(out), nil
}
