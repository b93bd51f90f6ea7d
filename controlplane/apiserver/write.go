package apiserver

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"

	"sigs.k8s.io/yaml"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/store"
)

// Retries of writes the server itself can safely repeat.
const (
	maxGenerateNameTries = 5
	maxUpdateRetries     = 100
)

// protectedNamespaces are created at bootstrap and cannot be deleted.
var protectedNamespaces = map[string]bool{"default": true, "kube-system": true}

// readBody reads a request body of at most MaxBodyBytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *statusError) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, tooLarge(s.cfg.MaxBodyBytes)
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + 1)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(s.cfg.MaxBodyBytes)
		}
		return nil, badRequest("reading request body: %v", err)
	}
	return buf.Bytes(), nil
}

func tooLarge(limit int64) *statusError {
	return newStatus(http.StatusRequestEntityTooLarge, api.ReasonRequestEntityTooLarge,
		fmt.Sprintf("request body is larger than the limit of %d bytes", limit))
}

// decodeBody decodes an object for a create or update of t: strictly (an
// unknown field is an Invalid cause naming its path), with kind, apiVersion,
// namespace and name checked against (or filled from) the URL.
func decodeBody(body []byte, t target) (api.Object, *statusError) {
	data := bytes.TrimSpace(body)
	if len(data) == 0 {
		return nil, badRequest("request body is empty: want a %s object", t.info.Kind)
	}
	if data[0] != '{' {
		j, err := yaml.YAMLToJSON(data)
		if err != nil {
			return nil, badRequest("malformed request body (neither JSON nor YAML): %v", err)
		}
		data = bytes.TrimSpace(j)
		if len(data) == 0 || data[0] != '{' {
			return nil, badRequest("request body is not an object: want a %s object", t.info.Kind)
		}
	}
	// Well-formed bodies of the URL's kind decode in one strict pass;
	// anything else goes the careful way below, which names every problem.
	if o, err := api.DecodeAs(data, t.info); err == nil && api.KindOf(o) == t.info.Kind {
		return checkTarget(o, t)
	}
	var probe struct {
		Kind       *string `json:"kind"`
		APIVersion *string `json:"apiVersion"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, badRequest("malformed JSON body at offset %d: %v", syn.Offset, err)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, badRequest("malformed JSON body: %v", err)
		}
		// A wrongly typed field: strict decoding below names its path.
	}
	if probe.Kind != nil && *probe.Kind != "" && *probe.Kind != string(t.info.Kind) {
		return nil, badRequest("the object's kind %q does not match the URL's resource %s (kind %s)",
			*probe.Kind, t.info.GroupResource(), t.info.Kind)
	}
	if probe.APIVersion != nil && *probe.APIVersion != "" && *probe.APIVersion != t.info.APIVersion() {
		return nil, badRequest("the object's apiVersion %q does not match the URL's %q for %s",
			*probe.APIVersion, t.info.APIVersion(), t.info.Kind)
	}
	if probe.Kind == nil || *probe.Kind == "" || probe.APIVersion == nil || *probe.APIVersion == "" {
		data = fillTypeMeta(data, t.info, probe.Kind == nil || *probe.Kind == "", probe.APIVersion == nil || *probe.APIVersion == "")
	}
	o, err := api.DecodeObject(data)
	if err != nil {
		var fe api.FieldErrors
		if errors.As(err, &fe) && len(fe) > 0 {
			return nil, invalid(&t.info, firstNonEmpty(probe.Metadata.Name, t.name), fe)
		}
		return nil, badRequest("decoding %s: %v", t.info.Kind, err)
	}
	if api.KindOf(o) != t.info.Kind {
		return nil, badRequest("the object's kind %q does not match the URL's resource %s", api.KindOf(o), t.info.GroupResource())
	}
	return checkTarget(o, t)
}

// checkTarget checks (or fills) the object's namespace and name against
// the URL's.
func checkTarget(o api.Object, t target) (api.Object, *statusError) {
	m := o.GetObjectMeta()
	if t.info.Namespaced {
		switch {
		case m.Namespace == "":
			m.Namespace = t.namespace
		case t.namespace != "" && m.Namespace != t.namespace:
			return nil, badRequest("the namespace of the object (%s) does not match the namespace of the URL (%s)", m.Namespace, t.namespace)
		}
	} else if m.Namespace != "" {
		return nil, badRequest("%s is cluster-scoped: metadata.namespace must be empty, not %q", t.info.Kind, m.Namespace)
	}
	if t.name != "" {
		switch {
		case m.Name == "":
			m.Name = t.name
		case m.Name != t.name:
			return nil, badRequest("the name of the object (%s) does not match the name of the URL (%s)", m.Name, t.name)
		}
	}
	return o, nil
}

// fillTypeMeta inserts the URL's kind and/or apiVersion into a JSON object.
func fillTypeMeta(data []byte, info api.ResourceInfo, kind, apiVersion bool) []byte {
	var b bytes.Buffer
	b.Grow(len(data) + 64)
	b.WriteByte('{')
	sep := ""
	if kind {
		fmt.Fprintf(&b, `"kind":%q`, string(info.Kind))
		sep = ","
	}
	if apiVersion {
		fmt.Fprintf(&b, `%s"apiVersion":%q`, sep, info.APIVersion())
	}
	rest := bytes.TrimSpace(data[1:])
	if len(rest) > 0 && rest[0] != '}' {
		b.WriteByte(',')
	}
	b.Write(rest)
	return b.Bytes()
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

const nameChars = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomSuffix is 5 characters of [a-z0-9], as Kubernetes appends to
// generateName.
func randomSuffix() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = nameChars[int(b[i])%len(nameChars)]
	}
	return string(b[:])
}

// leaderBody forwards the request to the leader when this server is not
// it (and returns false); otherwise it reads the body, answering the error
// itself if that fails.
func (s *Server) leaderBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if !s.store.IsLeader() {
		s.forward(w, r, nil)
		return nil, false
	}
	body, serr := s.readBody(w, r)
	if serr != nil {
		writeStatus(w, serr)
		return nil, false
	}
	return body, true
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, t target) {
	body, ok := s.leaderBody(w, r)
	if !ok {
		return
	}
	o, serr := decodeBody(body, t)
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	m := o.GetObjectMeta()
	generated := m.Name == "" && m.GenerateName != ""
	if generated {
		m.Name = m.GenerateName + randomSuffix()
	}
	if !s.authorizeResource(w, r, t, m.Name) {
		return
	}
	api.Default(o)
	if errs := api.Validate(o); len(errs) > 0 {
		writeStatus(w, invalid(&t.info, m.Name, errs))
		return
	}
	if !s.admitObject(w, r, t, o, nil) {
		return
	}
	if t.info.Namespaced {
		nsKey := store.Key{Kind: api.KindNamespace, Name: m.Namespace}
		_, err := s.store.Get(nsKey)
		if errors.Is(err, store.ErrNotFound) && s.store.ReadBarrier(r.Context()) == nil {
			_, err = s.store.Get(nsKey) // confirmed on an up-to-date leader
		}
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				nsInfo, _ := api.ByKind(api.KindNamespace)
				e := newStatus(http.StatusNotFound, api.ReasonNotFound,
					fmt.Sprintf("namespace %q not found: create it before creating %s in it", m.Namespace, t.info.GroupResource())).
					withDetails(&nsInfo, m.Namespace)
				writeStatus(w, e)
				return
			}
			writeStatus(w, storeError(err, &t.info, m.Namespace, m.Name))
			return
		}
	}
	var out api.Object
	var err error
	for try := 1; ; try++ {
		out, err = s.store.Create(r.Context(), o)
		if generated && errors.Is(err, store.ErrAlreadyExists) && try < maxGenerateNameTries {
			m.Name = m.GenerateName + randomSuffix()
			continue
		}
		break
	}
	s.answerWrite(w, r, body, t, m.Namespace, m.Name, out, err, http.StatusCreated)
}

// update replaces an object (or its status). A resourceVersion in the body
// is a precondition; without one the update is unconditional, done as a
// read-validate-write loop so validation always sees the version replaced.
func (s *Server) update(w http.ResponseWriter, r *http.Request, t target) {
	body, ok := s.leaderBody(w, r)
	if !ok {
		return
	}
	o, serr := decodeBody(body, t)
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	api.Default(o)
	m := o.GetObjectMeta()
	conditional := m.ResourceVersion != ""
	if conditional {
		if _, err := strconv.ParseUint(m.ResourceVersion, 10, 64); err != nil {
			writeStatus(w, invalid(&t.info, m.Name, api.FieldErrors{{
				Field: "metadata.resourceVersion", Type: api.FieldInvalid,
				Detail: fmt.Sprintf("%q is not a resourceVersion (a non-negative integer)", m.ResourceVersion)}}))
			return
		}
	}
	write := s.store.Update
	if t.subresource == "status" {
		write = s.store.UpdateStatus
	}
	var out api.Object
	var err error
	for try := 1; ; try++ {
		var cur api.Object
		cur, err = s.store.Get(t.key())
		if errors.Is(err, store.ErrNotFound) {
			// A leader new in its term may not have applied every earlier
			// entry yet: confirm the object is really gone before a 404.
			if err = s.store.ReadBarrier(r.Context()); err == nil {
				cur, err = s.store.Get(t.key())
			}
		}
		if err != nil {
			break
		}
		checked := o
		if t.subresource == "status" {
			// A status write changes status only: validate the stored
			// object with the new status, not whatever spec the body has.
			checked = withStatus(cur, o)
		} else {
			api.PrepareForUpdate(o, cur)
		}
		if errs := api.ValidateUpdate(checked, cur); len(errs) > 0 {
			writeStatus(w, invalid(&t.info, m.Name, errs))
			return
		}
		if !s.admitObject(w, r, t, o, cur) {
			return
		}
		if !conditional {
			m.ResourceVersion = cur.GetObjectMeta().ResourceVersion
		}
		out, err = write(r.Context(), o)
		if !conditional && errors.Is(err, store.ErrConflict) && try < maxUpdateRetries {
			continue
		}
		break
	}
	s.answerWrite(w, r, body, t, t.namespace, t.name, out, err, http.StatusOK)
}

// deleteOptions is the part of Kubernetes' DeleteOptions skiff honours;
// other fields (propagationPolicy, ...) are accepted and ignored so
// kubectl-style bodies work.
type deleteOptions struct {
	Preconditions *struct {
		ResourceVersion *string  `json:"resourceVersion"`
		UID             *api.UID `json:"uid"`
	} `json:"preconditions"`
	// GracePeriodSeconds applies to pods running on a node: nil gives the
	// pod its own terminationGracePeriodSeconds, 0 deletes it at once.
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds"`
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, t target) {
	body, ok := s.leaderBody(w, r)
	if !ok {
		return
	}
	var pre store.Preconditions
	var opts deleteOptions
	if v := r.URL.Query().Get("gracePeriodSeconds"); v != "" {
		g, err := strconv.ParseInt(v, 10, 64)
		if err != nil || g < 0 {
			writeStatus(w, badRequest("invalid gracePeriodSeconds %q: want a non-negative integer", v))
			return
		}
		opts.GracePeriodSeconds = &g
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, &opts); err != nil {
			writeStatus(w, badRequest("decoding DeleteOptions: %v", err))
			return
		}
		if p := opts.Preconditions; p != nil {
			if p.ResourceVersion != nil && *p.ResourceVersion != "" {
				rv, err := strconv.ParseUint(*p.ResourceVersion, 10, 64)
				if err != nil {
					writeStatus(w, badRequest("invalid preconditions.resourceVersion %q: want a non-negative integer", *p.ResourceVersion))
					return
				}
				pre.ResourceVersion = rv
			}
			if p.UID != nil {
				pre.UID = *p.UID
			}
		}
	}
	if t.info.Kind == api.KindNamespace {
		if serr := s.checkNamespaceDeletable(t.name); serr != nil {
			writeStatus(w, serr)
			return
		}
	}
	if g := opts.GracePeriodSeconds; g != nil && *g < 0 {
		writeStatus(w, badRequest("invalid gracePeriodSeconds %d: want a non-negative integer", *g))
		return
	}
	res, err := s.store.Batch(r.Context(), []store.Op{{Type: store.OpDelete, Key: t.key(), Preconditions: pre, Grace: opts.GracePeriodSeconds}})
	var out api.Object
	if err == nil {
		out, err = res[0].Object, res[0].Err
	}
	s.answerWrite(w, r, body, t, t.namespace, t.name, out, err, http.StatusOK)
}

// checkNamespaceDeletable refuses to delete a bootstrap namespace or one
// that still holds objects (skiff has no namespace finalizer that would
// delete them: delete them first). An object created concurrently with the
// namespace's deletion can still outlive it.
func (s *Server) checkNamespaceDeletable(ns string) *statusError {
	nsInfo, _ := api.ByKind(api.KindNamespace)
	if protectedNamespaces[ns] {
		return newStatus(http.StatusForbidden, api.ReasonForbidden,
			fmt.Sprintf("namespace %q is created by the system and cannot be deleted", ns)).withDetails(&nsInfo, ns)
	}
	for _, info := range api.Resources() {
		if !info.Namespaced {
			continue
		}
		items, _, err := s.store.List(info.Kind, store.ListOptions{Namespace: ns})
		if err != nil {
			return storeError(err, &info, ns, "")
		}
		if len(items) > 0 {
			return newStatus(http.StatusConflict, api.ReasonConflict,
				fmt.Sprintf("namespace %q is not empty: it still holds %d %s; delete them first", ns, len(items), info.GroupResource())).
				withDetails(&nsInfo, ns)
		}
	}
	return nil
}

// withStatus returns a copy of cur (top level; nested values shared and
// not modified) carrying from's status.
func withStatus(cur, from api.Object) api.Object {
	v := reflect.New(reflect.TypeOf(cur).Elem())
	v.Elem().Set(reflect.ValueOf(cur).Elem())
	out := v.Interface().(api.Object)
	api.CopyStatus(out, from)
	return out
}

// answerWrite answers a store write: the object with code, the write
// forwarded to the leader if leadership moved before it was proposed, or
// the error as a Status.
func (s *Server) answerWrite(w http.ResponseWriter, r *http.Request, body []byte, t target, ns, name string, out api.Object, err error, code int) {
	switch {
	case err == nil:
		s.writeObject(w, code, t.info, out)
	case errors.Is(err, store.ErrNotLeader):
		s.forward(w, r, body)
	default:
		writeStatus(w, storeError(err, &t.info, ns, name))
	}
}
