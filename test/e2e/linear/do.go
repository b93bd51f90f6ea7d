package linear

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
)

// Outcome classifies what an operation did.
type Outcome int

// Outcomes of Do.
const (
	// Definite: a real answer, to be checked by the model.
	Definite Outcome = iota
	// NotApplied: certainly had no effect (never reached a server, or
	// refused before it was proposed): left out of the history.
	NotApplied
	// Unknown: a write may or may not have taken effect; a read told
	// nothing.
	Unknown
)

func (o Outcome) String() string {
	switch o {
	case Definite:
		return "definite"
	case NotApplied:
		return "not applied"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// headerWriteOutcome is the API server's mark on a failed write that may
// have been committed all the same.
const headerWriteOutcome = "X-Skiff-Write-Outcome"

// Body is the Namespace object that create and put send: key as its name,
// value as its label "v".
func Body(key, value string) []byte {
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": key, "labels": map[string]string{"v": value}},
	})
	return b
}

// Do runs one operation against the API server at baseURL (e.g.
// https://10.250.0.11:6443) and classifies the outcome. Output.Unknown is
// set exactly when the outcome is Unknown.
func Do(ctx context.Context, hc *http.Client, baseURL string, in Input) (Output, Outcome) {
	path := baseURL + "/api/v1/namespaces"
	var method string
	var body []byte
	switch in.Op {
	case OpCreate:
		method, body = http.MethodPost, Body(in.Key, in.Value)
	case OpPut:
		method, path, body = http.MethodPut, path+"/"+in.Key, Body(in.Key, in.Value)
	case OpDelete:
		method, path = http.MethodDelete, path+"/"+in.Key
	case OpGet:
		method, path = http.MethodGet, path+"/"+in.Key
	default:
		return Output{}, NotApplied
	}
	req, err := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	if err != nil {
		return Output{}, NotApplied
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		// Never reached a server: certainly not applied.
		return Output{}, NotApplied
	}
	var code int
	var rbody []byte
	if err == nil {
		code = resp.StatusCode
		rbody, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if code == http.StatusServiceUnavailable && resp.Header.Get(headerWriteOutcome) != "unknown" {
			// Refused before it was proposed (no leader yet).
			return Output{}, NotApplied
		}
	}
	switch {
	case err == nil && (code == 200 || code == 201 || code == 404 || code == 409):
		out := Output{Status: code}
		if in.Op == OpGet && code == 200 {
			v, err := LabelV(rbody)
			if err != nil {
				return Output{}, NotApplied
			}
			out.Value = v
		}
		return out, Definite
	case err == nil && code/100 == 4:
		// A definite rejection that the model does not expect is a bug:
		// the check reports it.
		return Output{Status: code, Value: string(rbody)}, Definite
	}
	return Output{Unknown: true}, Unknown
}

// ReadLocal reads key from the replica of the server at baseURL itself
// (?consistent=false: no read barrier, no forwarding to the leader), to
// compare replicas. It returns the status (200 or 404) and the value.
func ReadLocal(ctx context.Context, hc *http.Client, baseURL, key string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/api/v1/namespaces/"+key+"?consistent=false", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("read %s from %s: %w", key, baseURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("read %s from %s: %w", key, baseURL, err)
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return resp.StatusCode, "", nil
	case http.StatusOK:
		v, err := LabelV(b)
		if err != nil {
			return 0, "", fmt.Errorf("read %s from %s: %w", key, baseURL, err)
		}
		return resp.StatusCode, v, nil
	}
	return resp.StatusCode, "", fmt.Errorf("read %s from %s: %s: %s", key, baseURL, resp.Status, bytes.TrimSpace(b))
}

// LabelV returns the label "v" of a Namespace object.
func LabelV(b []byte) (string, error) {
	var ns struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(b, &ns); err != nil {
		return "", fmt.Errorf("decode namespace: %w", err)
	}
	return ns.Metadata.Labels["v"], nil
}
