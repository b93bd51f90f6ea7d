package api

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

const (
	testCAHash = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testID     = "abc123"
	testSecret = "0123456789abcdef"
)

func TestParseJoinToken(t *testing.T) {
	full := "K10" + testCAHash + "::" + testID + "." + testSecret
	tests := []struct {
		name    string
		in      string
		want    JoinToken
		wantErr string // substring of the error; "" means success
	}{
		{name: "full", in: full, want: JoinToken{CAHash: testCAHash, ID: testID, Secret: testSecret}},
		{name: "bare", in: testID + "." + testSecret, want: JoinToken{ID: testID, Secret: testSecret}},
		{name: "trailing newline", in: full + "\n", want: JoinToken{CAHash: testCAHash, ID: testID, Secret: testSecret}},
		{name: "upper-case CA hash is normalised", in: "K10" + strings.ToUpper(testCAHash) + "::" + testID + "." + testSecret,
			want: JoinToken{CAHash: testCAHash, ID: testID, Secret: testSecret}},

		{name: "empty", in: "", wantErr: "empty token"},
		{name: "blank", in: " \n", wantErr: "empty token"},
		{name: "upper-case id", in: "ABC123." + testSecret, wantErr: "id must be 6 characters [a-z0-9], got other characters"},
		{name: "upper-case secret", in: testID + "." + strings.ToUpper(testSecret), wantErr: "secret must be 16 characters [a-z0-9], got other characters"},
		{name: "short CA hash", in: "K10" + testCAHash[1:] + "::" + testID + "." + testSecret, wantErr: "CA hash must be 64 hex characters (sha256), got 63"},
		{name: "long CA hash", in: "K10" + testCAHash + "0::" + testID + "." + testSecret, wantErr: "got 65"},
		{name: "non-hex CA hash", in: "K10" + strings.Replace(testCAHash, "a", "g", 1) + "::" + testID + "." + testSecret, wantErr: "CA hash must be hex, got 'g'"},
		{name: "empty CA hash", in: "K10::" + testID + "." + testSecret, wantErr: "got 0"},
		{name: "short id", in: "abc12." + testSecret, wantErr: "id must be 6 characters [a-z0-9], got 5"},
		{name: "long id", in: "abc1234." + testSecret, wantErr: "id must be 6 characters [a-z0-9], got 7"},
		{name: "short secret", in: testID + "." + testSecret[1:], wantErr: "secret must be 16 characters [a-z0-9], got 15"},
		{name: "long secret", in: testID + "." + testSecret + "0", wantErr: "got 17"},
		{name: "no prefix", in: testCAHash + "::" + testID + "." + testSecret, wantErr: "must start with K10"},
		{name: "lower-case prefix", in: "k10" + testCAHash + "::" + testID + "." + testSecret, wantErr: "must start with K10"},
		{name: "single colon", in: "K10" + testCAHash + ":" + testID + "." + testSecret, wantErr: `separated by "::"`},
		{name: "prefix without separator", in: "K10" + testCAHash + testID + "." + testSecret, wantErr: `separated by "::"`},
		{name: "colon instead of dot", in: "K10" + testCAHash + "::" + testID + ":" + testSecret, wantErr: `separated by "."`},
		{name: "no dot", in: testID + testSecret, wantErr: `separated by "."`},
		{name: "two dots", in: testID + "." + testSecret + ".x", wantErr: "secret must be 16"},
		{name: "extra text after", in: full + " extra", wantErr: "secret must be 16"},
		{name: "extra text before", in: "x" + full, wantErr: "must start with K10"},
		{name: "inner space", in: testID + ". " + testSecret[1:], wantErr: "got other characters"},
		{name: "double separator", in: "K10" + testCAHash + "::::" + testID + "." + testSecret, wantErr: "id must be 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJoinToken(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseJoinToken(%q): %v", tt.in, err)
				}
				if got != tt.want {
					t.Fatalf("ParseJoinToken(%q) = %+v, want %+v", tt.in, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseJoinToken(%q) = %+v, want error containing %q", tt.in, got, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidJoinToken) {
				t.Errorf("error %v does not wrap ErrInvalidJoinToken", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error %q does not contain %q", msg, tt.wantErr)
			}
			if !strings.HasPrefix(msg, "token: want K10<sha256 of the CA>::<id>.<secret>") {
				t.Errorf("error %q does not say which form is wanted", msg)
			}
			// No secret-looking substring of the input may appear in the error.
			if strings.Contains(msg, testSecret[:8]) || strings.Contains(strings.ToLower(msg), strings.ToLower(testSecret[4:12])) {
				t.Errorf("error %q echoes the secret", msg)
			}
		})
	}
}

func TestJoinTokenRoundTrip(t *testing.T) {
	for _, caHash := range []string{testCAHash, ""} {
		tok, err := NewJoinToken(caHash)
		if err != nil {
			t.Fatal(err)
		}
		if len(tok.ID) != 6 || len(tok.Secret) != 16 || !isTokenChars(tok.ID+tok.Secret) {
			t.Fatalf("NewJoinToken = %+v: bad id or secret shape", tok)
		}
		s := tok.String()
		if (caHash == "") == strings.HasPrefix(s, "K10") {
			t.Errorf("String() = %q for CAHash %q", s, caHash)
		}
		back, err := ParseJoinToken(s)
		if err != nil {
			t.Fatalf("ParseJoinToken(%q): %v", s, err)
		}
		if back != tok {
			t.Errorf("round trip: %+v != %+v", back, tok)
		}
	}
	a, _ := NewJoinToken("")
	b, _ := NewJoinToken("")
	if a.Secret == b.Secret {
		t.Errorf("two tokens share the secret %q", a.Secret)
	}
}

func TestNewJoinTokenRejectsBadHash(t *testing.T) {
	if _, err := NewJoinToken("abc"); !errors.Is(err, ErrInvalidJoinToken) {
		t.Fatalf("NewJoinToken(\"abc\") error = %v, want ErrInvalidJoinToken", err)
	}
	tok, err := NewJoinToken(strings.ToUpper(testCAHash))
	if err != nil || tok.CAHash != testCAHash {
		t.Fatalf("NewJoinToken(upper) = %+v, %v; want the hash lower-cased", tok, err)
	}
}

func TestJoinTokenRedacted(t *testing.T) {
	tests := []struct {
		tok  JoinToken
		want string
	}{
		{JoinToken{CAHash: testCAHash, ID: testID, Secret: testSecret}, "K100123…::abc123.****************"},
		{JoinToken{ID: testID, Secret: testSecret}, "abc123.****************"},
	}
	for _, tt := range tests {
		got := tt.tok.Redacted()
		if got != tt.want {
			t.Errorf("Redacted() = %q, want %q", got, tt.want)
		}
		if strings.Contains(got, tt.tok.Secret) {
			t.Errorf("Redacted() = %q contains the secret", got)
		}
	}
	for range 100 {
		tok, err := NewJoinToken(testCAHash)
		if err != nil {
			t.Fatal(err)
		}
		if r := tok.Redacted(); strings.Contains(r, tok.Secret) {
			t.Fatalf("Redacted() = %q contains the secret %q", r, tok.Secret)
		}
	}
}

func TestHashTokenSecret(t *testing.T) {
	// sha256("0123456789abcdef"), computed independently.
	const want = "9f9f5111f7b27a781f1f1ddde5ebc2dd2b796bfc7365c9c28b548e564176929f"
	if got := HashTokenSecret(testSecret); got != want {
		t.Errorf("HashTokenSecret = %s, want %s", got, want)
	}
	if !TokenSecretMatches(want, testSecret) {
		t.Error("TokenSecretMatches(hash, secret) = false")
	}
	if TokenSecretMatches(want, "0123456789abcdeg") {
		t.Error("TokenSecretMatches(hash, other) = true")
	}
}

func TestTokenEnums(t *testing.T) {
	for _, u := range []TokenUsage{TokenUsageServer, TokenUsageAgent, TokenUsageUser} {
		if !u.Valid() {
			t.Errorf("%q.Valid() = false", u)
		}
	}
	for _, u := range []TokenUsage{"", "Agent", "admin"} {
		if u.Valid() {
			t.Errorf("%q.Valid() = true", u)
		}
	}
	for _, r := range []TokenRole{RoleAdmin, RoleEdit, RoleView} {
		if !r.Valid() {
			t.Errorf("%q.Valid() = false", r)
		}
	}
	for _, r := range []TokenRole{"", "Admin", "agent"} {
		if r.Valid() {
			t.Errorf("%q.Valid() = true", r)
		}
	}
}

// FuzzParseJoinToken checks that no input makes ParseJoinToken panic, that
// a parsed token prints back to itself, and that errors mask whatever
// follows the '.' (where a secret would be).
func FuzzParseJoinToken(f *testing.F) {
	for _, s := range []string{
		"K10" + testCAHash + "::" + testID + "." + testSecret,
		testID + "." + testSecret,
		"K10" + strings.ToUpper(testCAHash) + "::" + testID + "." + testSecret,
		"K10::.",
		"0000.0000",  // the id may equal the secret: only the id is shown
		"K10\"00.::", // a '.' before "::" is not the secret's separator
		"::",
		".",
		"K10" + testCAHash + "::" + testID + ".\xff" + testSecret[1:],
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseJoinToken(s)
		if err != nil {
			// The input appears only as the quoted "got" part; the reasons
			// are fixed text.
			msg := err.Error()
			const marker = ", got "
			i := strings.Index(msg, marker)
			if i < 0 {
				t.Fatalf("error %q has no %q", msg, marker)
			}
			quoted, qerr := strconv.QuotedPrefix(msg[i+len(marker):])
			if qerr != nil {
				t.Fatalf("error %q: input not quoted: %v", msg, qerr)
			}
			got, _ := strconv.Unquote(quoted)
			if j := strings.LastIndexByte(got, '.'); j >= 0 && strings.Trim(got[j+1:], "*…") != "" {
				t.Fatalf("error %q shows what may be the secret", msg)
			}
			return
		}
		back, err := ParseJoinToken(tok.String())
		if err != nil {
			t.Fatalf("ParseJoinToken(%q) ok, but its String() %q does not parse: %v", s, tok.String(), err)
		}
		if back != tok {
			t.Fatalf("round trip of %q: %+v != %+v", s, back, tok)
		}
		if strings.Contains(tok.Redacted(), tok.Secret) {
			t.Fatalf("Redacted() = %q contains the secret", tok.Redacted())
		}
	})
}
