package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/skiffhq/skiff/api"
)

// defaultNamespace is used for namespaced objects that name none, as
// kubectl does.
const defaultNamespace = "default"

// resourcePath is the URL path of a collection (name "") or an object.
func resourcePath(info api.ResourceInfo, namespace, name, subresource string) string {
	var b strings.Builder
	if info.Group == "" {
		b.WriteString("/api/" + info.Version)
	} else {
		b.WriteString("/apis/" + info.Group + "/" + info.Version)
	}
	if info.Namespaced && namespace != "" {
		b.WriteString("/namespaces/" + url.PathEscape(namespace))
	}
	b.WriteString("/" + info.Resource)
	if name != "" {
		b.WriteString("/" + url.PathEscape(name))
		if subresource != "" {
			b.WriteString("/" + subresource)
		}
	}
	return b.String()
}

func resourceInfo(kind api.Kind) (api.ResourceInfo, error) {
	info, ok := api.ByKind(kind)
	if !ok {
		return info, fmt.Errorf("client: unknown kind %q", kind)
	}
	return info, nil
}

func objectNamespace(info api.ResourceInfo, ns string) string {
	if info.Namespaced && ns == "" {
		return defaultNamespace
	}
	if !info.Namespaced {
		return ""
	}
	return ns
}

// decodeObject decodes an answer leniently: a newer server may add fields.
func decodeObject(info api.ResourceInfo, b []byte) (api.Object, error) {
	o := info.New()
	if err := json.Unmarshal(b, o); err != nil {
		return nil, fmt.Errorf("client: decoding %s: %w", info.Kind, err)
	}
	tm := o.GetTypeMeta()
	if tm.Kind == "" {
		tm.Kind, tm.APIVersion = string(info.Kind), info.APIVersion()
	}
	return o, nil
}

func (c *Client) objectCall(ctx context.Context, info api.ResourceInfo, method, path string, body []byte) (api.Object, error) {
	var raw json.RawMessage
	if err := c.call(ctx, method, path, body, &raw); err != nil {
		return nil, err
	}
	return decodeObject(info, raw)
}

// Get reads one object (namespace "" means "default" for namespaced kinds).
// The read is linearizable.
func (c *Client) Get(ctx context.Context, kind api.Kind, namespace, name string) (api.Object, error) {
	info, err := resourceInfo(kind)
	if err != nil {
		return nil, err
	}
	return c.objectCall(ctx, info, http.MethodGet, resourcePath(info, objectNamespace(info, namespace), name, ""), nil)
}

// List lists the objects of a kind matching opts.
func (c *Client) List(ctx context.Context, kind api.Kind, opts ListOptions) (*List, error) {
	info, err := resourceInfo(kind)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	opts.query(q)
	if opts.Stale {
		q.Set("consistent", "false")
	}
	path := resourcePath(info, opts.Namespace, "", "")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var raw struct {
		Metadata api.ListMeta      `json:"metadata"`
		Items    []json.RawMessage `json:"items"`
	}
	if err := c.call(ctx, http.MethodGet, path, nil, &raw); err != nil {
		return nil, err
	}
	l := &List{ResourceVersion: raw.Metadata.ResourceVersion, Items: make([]api.Object, 0, len(raw.Items))}
	for _, it := range raw.Items {
		o, err := decodeObject(info, it)
		if err != nil {
			return nil, err
		}
		l.Items = append(l.Items, o)
	}
	return l, nil
}

func (o ListOptions) query(q url.Values) {
	if o.LabelSelector != "" {
		q.Set("labelSelector", o.LabelSelector)
	}
	if o.FieldSelector != "" {
		q.Set("fieldSelector", o.FieldSelector)
	}
}

func (c *Client) write(ctx context.Context, method string, obj api.Object, named bool, sub string) (api.Object, error) {
	info, err := resourceInfo(api.KindOf(obj))
	if err != nil {
		return nil, err
	}
	m := obj.GetObjectMeta()
	name := ""
	if named {
		if m.Name == "" {
			return nil, fmt.Errorf("client: %s %s: object has no name", method, info.Kind)
		}
		name = m.Name
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("client: encoding %s: %w", info.Kind, err)
	}
	return c.objectCall(ctx, info, method, resourcePath(info, objectNamespace(info, m.Namespace), name, sub), body)
}

// Create creates obj (its kind must be set) and returns it as stored.
func (c *Client) Create(ctx context.Context, obj api.Object) (api.Object, error) {
	return c.write(ctx, http.MethodPost, obj, false, "")
}

// Update replaces obj's metadata and spec. Its resourceVersion, if set, is
// a precondition (a stale one gives a Conflict); unset, the update is
// unconditional.
func (c *Client) Update(ctx context.Context, obj api.Object) (api.Object, error) {
	return c.write(ctx, http.MethodPut, obj, true, "")
}

// UpdateStatus replaces obj's status.
func (c *Client) UpdateStatus(ctx context.Context, obj api.Object) (api.Object, error) {
	return c.write(ctx, http.MethodPut, obj, true, "status")
}

// Delete deletes an object and returns its last state.
func (c *Client) Delete(ctx context.Context, kind api.Kind, namespace, name string, opts DeleteOptions) (api.Object, error) {
	info, err := resourceInfo(kind)
	if err != nil {
		return nil, err
	}
	var body []byte
	if opts.ResourceVersion != "" || opts.UID != "" || opts.GracePeriodSeconds != nil {
		type pre struct {
			ResourceVersion string  `json:"resourceVersion,omitempty"`
			UID             api.UID `json:"uid,omitempty"`
		}
		body, _ = json.Marshal(struct {
			Kind               string `json:"kind"`
			APIVersion         string `json:"apiVersion"`
			Preconditions      pre    `json:"preconditions"`
			GracePeriodSeconds *int64 `json:"gracePeriodSeconds,omitempty"`
		}{"DeleteOptions", "v1", pre{opts.ResourceVersion, opts.UID}, opts.GracePeriodSeconds})
	}
	return c.objectCall(ctx, info, http.MethodDelete, resourcePath(info, objectNamespace(info, namespace), name, ""), body)
}

// Members returns the cluster membership as the answering server sees it.
func (c *Client) Members(ctx context.Context) (*Members, error) {
	var m Members
	if err := c.call(ctx, http.MethodGet, "/skiff/v1/members", nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}
