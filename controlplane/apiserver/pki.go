package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/auth"
	"github.com/skiffhq/skiff/controlplane/store"
)

// TokenRequest is the body of POST /skiff/v1/tokens.
type TokenRequest struct {
	Usage       api.TokenUsage `json:"usage"`
	Role        api.TokenRole  `json:"role,omitempty"`
	Namespace   string         `json:"namespace,omitempty"`
	TTL         string         `json:"ttl,omitempty"` // Go duration; "" or "0": no expiry
	Description string         `json:"description,omitempty"`
}

// TokenInfo describes a token without its secret.
type TokenInfo struct {
	ID          string         `json:"id"`
	Usage       api.TokenUsage `json:"usage"`
	Role        api.TokenRole  `json:"role,omitempty"`
	Namespace   string         `json:"namespace,omitempty"`
	Description string         `json:"description,omitempty"`
	Created     time.Time      `json:"created"`
	Expires     *time.Time     `json:"expires,omitempty"`
}

// CreatedToken is the answer to a create: the only time the secret is
// shown.
type CreatedToken struct {
	TokenInfo
	Token string `json:"token"`
}

// TokenList is the body of GET /skiff/v1/tokens.
type TokenList struct {
	Items []TokenInfo `json:"items"`
}

// TokenService manages join and role tokens.
type TokenService interface {
	CreateToken(ctx context.Context, req TokenRequest) (CreatedToken, error)
	ListTokens() []TokenInfo
	RevokeToken(ctx context.Context, id string) error
}

// CertificateRequest is the body of POST /skiff/v1/certificates: a CSR for
// a joining server (usage server) or node agent (usage agent), sent with
// the join token as a bearer credential.
type CertificateRequest struct {
	CSR       string         `json:"csr"`
	Usage     api.TokenUsage `json:"usage"`
	Name      string         `json:"name"`                // server ID or node name
	Addresses []string       `json:"addresses,omitempty"` // host names and IPs for the certificate
}

// CertificateResponse carries the signed certificate and the CA.
type CertificateResponse struct {
	Certificate string `json:"certificate"`
	CA          string `json:"ca"`
}

// CertService serves the CA certificate and signs joiners' CSRs.
type CertService interface {
	CAPEM() []byte
	// SignCertificate checks the join token (its usage must match) and
	// signs. Errors wrap auth.ErrUnauthorized for a bad token and
	// store.ErrInvalid for a bad request.
	SignCertificate(ctx context.Context, tokenID, tokenSecret string, req CertificateRequest) (CertificateResponse, error)
}

func (s *Server) caCert(w http.ResponseWriter, r *http.Request) {
	certs := s.certs()
	if certs == nil {
		writeStatus(w, notFoundPath("this server has no CA"))
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeStatus(w, methodNotAllowed(r.Method, auth.PathCA))
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(certs.CAPEM())
}

func (s *Server) certs() CertService {
	if s.cfg.Security == nil {
		return nil
	}
	return s.cfg.Security.Certs
}

func (s *Server) signCertificate(w http.ResponseWriter, r *http.Request) {
	certs := s.certs()
	if certs == nil {
		writeStatus(w, notFoundPath("this server does not sign certificates"))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeStatus(w, methodNotAllowed(r.Method, auth.PathCertificates))
		return
	}
	id, secret, ok := bearer(r)
	if !ok {
		writeStatus(w, newStatus(http.StatusUnauthorized, api.ReasonUnauthorized, "a join token is required: Authorization: Bearer <id>.<secret>"))
		return
	}
	body, ok := s.leaderBody(w, r)
	if !ok {
		return
	}
	var req CertificateRequest
	dec := json.NewDecoder(bytesReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeStatus(w, badRequest("decoding certificate request: %v", err))
		return
	}
	resp, err := certs.SignCertificate(r.Context(), id, secret, req)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, resp)
	case errors.Is(err, auth.ErrUnauthorized):
		writeStatus(w, newStatus(http.StatusUnauthorized, api.ReasonUnauthorized, err.Error()))
	case errors.Is(err, store.ErrInvalid):
		writeStatus(w, badRequest("%v", err))
	case errors.Is(err, store.ErrNotLeader):
		s.forward(w, r, body)
	default:
		writeStatus(w, newStatus(http.StatusInternalServerError, api.ReasonInternalError, "signing certificate: "+err.Error()))
	}
}

// bearer returns the id and secret of an "Authorization: Bearer id.secret"
// header (a full K10... join token is accepted too).
func bearer(r *http.Request) (id, secret string, ok bool) {
	v, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found {
		return "", "", false
	}
	t, err := api.ParseJoinToken(strings.TrimSpace(v))
	if err != nil {
		return "", "", false
	}
	return t.ID, t.Secret, true
}

func (s *Server) tokens(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Security == nil || s.cfg.Security.Tokens == nil {
		writeStatus(w, notFoundPath("this server does not manage tokens"))
		return
	}
	ts := s.cfg.Security.Tokens
	id := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, auth.PathTokens), "/")
	switch {
	case r.Method == http.MethodGet && id == "":
		writeJSON(w, http.StatusOK, TokenList{Items: ts.ListTokens()})
	case r.Method == http.MethodPost && id == "":
		body, ok := s.leaderBody(w, r)
		if !ok {
			return
		}
		var req TokenRequest
		dec := json.NewDecoder(bytesReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeStatus(w, badRequest("decoding token request: %v", err))
			return
		}
		created, err := ts.CreateToken(r.Context(), req)
		if err != nil {
			s.tokenError(w, r, body, err)
			return
		}
		writeJSON(w, http.StatusCreated, created)
	case r.Method == http.MethodDelete && id != "":
		if _, ok := s.leaderBody(w, r); !ok {
			return
		}
		if err := ts.RevokeToken(r.Context(), id); err != nil {
			s.tokenError(w, r, nil, err)
			return
		}
		writeJSON(w, http.StatusOK, api.Status{TypeMeta: api.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: "Success", Code: http.StatusOK, Message: fmt.Sprintf("token %s revoked", id)})
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		writeStatus(w, methodNotAllowed(r.Method, r.URL.Path))
	}
}

func (s *Server) tokenError(w http.ResponseWriter, r *http.Request, body []byte, err error) {
	switch {
	case errors.Is(err, store.ErrInvalid):
		writeStatus(w, badRequest("%v", err))
	case errors.Is(err, store.ErrNotFound):
		writeStatus(w, newStatus(http.StatusNotFound, api.ReasonNotFound, err.Error()))
	case errors.Is(err, store.ErrNotLeader):
		s.forward(w, r, body)
	default:
		writeStatus(w, storeError(err, nil, "", ""))
	}
}
