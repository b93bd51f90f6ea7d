package apiserver

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/controlplane/auth"
	"github.com/skiffhq/skiff/controlplane/store"
)

// The streaming subresources relayed to node agents, as Kubernetes names
// them:
//
//	GET  /api/v1/namespaces/{ns}/pods/{name}/log?container=&follow=&tailLines=&previous=&timestamps=&sinceSeconds=&sinceTime=
//	POST /api/v1/namespaces/{ns}/pods/{name}/exec?container=&command=...&stdin=&tty=   (connection upgrade)
//	GET|POST /api/v1/nodes/{name}/proxy/images
//
// The API server authorizes the user (get pods/log, create pods/exec, get
// or create nodes/proxy), finds the node, and relays the request to the
// agent's endpoint (nodeagent/server) at the node's InternalIP and
// status.daemonEndpoints.kubeletEndpoint.Port, presenting its own server
// certificate and checking that the agent's is the node's
// (system:node:<name>, of the cluster CA). Responses stream through
// unbuffered, an upgraded exec connection is relayed byte for byte, and
// none of these requests holds a slot of the concurrency gate: they last
// as long as their client.

// proxyKind is which subresource a streaming request is.
type proxyKind string

const (
	proxyLog       proxyKind = "log"
	proxyExec      proxyKind = "exec"
	proxyNodeProxy proxyKind = "proxy"
)

// proxyTarget is what a streaming subresource path addresses.
type proxyTarget struct {
	kind      proxyKind
	namespace string // pods only
	name      string // the pod's or the node's
	rest      string // nodes/proxy: the agent path after /proxy/ ("images")
}

// parseProxyPath recognises the streaming subresource paths.
func parseProxyPath(p string) (proxyTarget, bool) {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if len(segs) < 2 || segs[0] != "api" || segs[1] != "v1" {
		return proxyTarget{}, false
	}
	segs = segs[2:]
	switch {
	case len(segs) == 5 && segs[0] == "namespaces" && segs[2] == "pods" && (segs[4] == "log" || segs[4] == "exec"):
		if segs[1] == "" || segs[3] == "" {
			return proxyTarget{}, false
		}
		return proxyTarget{kind: proxyKind(segs[4]), namespace: segs[1], name: segs[3]}, true
	case len(segs) >= 3 && segs[0] == "nodes" && segs[2] == "proxy" && segs[1] != "":
		return proxyTarget{kind: proxyNodeProxy, name: segs[1], rest: strings.Join(segs[3:], "/")}, true
	}
	return proxyTarget{}, false
}

// isStreaming reports the requests that take no gate slot (see admit).
func isStreaming(r *http.Request) bool {
	_, ok := parseProxyPath(r.URL.Path)
	return ok
}

// proxyLabels are the request metrics' labels of a streaming request.
func proxyLabels(r *http.Request, t proxyTarget) requestLabels {
	switch t.kind {
	case proxyLog:
		return requestLabels{verb: "get", resource: "pods/log"}
	case proxyExec:
		return requestLabels{verb: "create", resource: "pods/exec"}
	}
	if r.Method == http.MethodGet {
		return requestLabels{verb: "get", resource: "nodes/proxy"}
	}
	return requestLabels{verb: "create", resource: "nodes/proxy"}
}

// serveProxy authorizes and relays a streaming subresource request.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request, t proxyTarget) {
	switch t.kind {
	case proxyLog:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			writeStatus(w, methodNotAllowed(r.Method, "pods/log"))
			return
		}
		if s.authorize(w, r, auth.Attributes{Verb: auth.VerbGet, Kind: api.KindPod, Namespace: t.namespace, Name: t.name,
			Subresource: "log", Path: r.URL.Path, Method: r.Method}) {
			s.podLog(w, r, t)
		}
	case proxyExec:
		if r.Method != http.MethodPost && r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET, POST")
			writeStatus(w, methodNotAllowed(r.Method, "pods/exec"))
			return
		}
		if s.authorize(w, r, auth.Attributes{Verb: auth.VerbCreate, Kind: api.KindPod, Namespace: t.namespace, Name: t.name,
			Subresource: "exec", Path: r.URL.Path, Method: r.Method}) {
			s.podExec(w, r, t)
		}
	case proxyNodeProxy:
		verb := auth.VerbCreate
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			verb = auth.VerbGet
		case http.MethodPost:
		default:
			w.Header().Set("Allow", "GET, POST")
			writeStatus(w, methodNotAllowed(r.Method, "nodes/proxy"))
			return
		}
		if s.authorize(w, r, auth.Attributes{Verb: verb, Kind: api.KindNode, Name: t.name,
			Subresource: "proxy", Path: r.URL.Path, Method: r.Method}) {
			s.nodeProxy(w, r, t)
		}
	}
}

// podLog relays GET pods/log to the container's node.
func (s *Server) podLog(w http.ResponseWriter, r *http.Request, t proxyTarget) {
	q := r.URL.Query()
	previous := q.Get("previous") == "true" || q.Get("previous") == "1"
	pod, ctr, serr := s.podContainer(t, q.Get("container"))
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	if serr := waitingContainer(pod, ctr, previous); serr != nil {
		writeStatus(w, serr)
		return
	}
	node, serr := s.podNode(pod)
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	out := url.Values{}
	for _, k := range []string{"follow", "tailLines", "previous", "timestamps", "sinceSeconds", "sinceTime"} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	s.relay(w, r, node, "/containerLogs/"+pathJoin(pod.Namespace, pod.Name, ctr), out)
}

// podExec relays an exec upgrade to the container's node.
func (s *Server) podExec(w http.ResponseWriter, r *http.Request, t proxyTarget) {
	q := r.URL.Query()
	cmd := q["command"]
	if len(cmd) == 0 || cmd[0] == "" {
		writeStatus(w, badRequest("you must specify at least one command for the container"))
		return
	}
	if !isUpgrade(r) {
		writeStatus(w, badRequest("exec needs a connection upgrade (Connection: Upgrade, Upgrade: skiff-remotecommand.v1): use skiff exec"))
		return
	}
	pod, ctr, serr := s.podContainer(t, q.Get("container"))
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	if ph := pod.Status.Phase; ph == api.PodSucceeded || ph == api.PodFailed {
		writeStatus(w, badRequest("cannot exec into a container in a completed pod; current phase is %s", ph))
		return
	}
	if serr := waitingContainer(pod, ctr, false); serr != nil {
		writeStatus(w, serr)
		return
	}
	node, serr := s.podNode(pod)
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	out := url.Values{"command": cmd}
	for _, k := range []string{"stdin", "tty"} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	s.relay(w, r, node, "/exec/"+pathJoin(pod.Namespace, pod.Name, ctr), out)
}

// nodeProxy relays nodes/{name}/proxy/images to the node's agent.
func (s *Server) nodeProxy(w http.ResponseWriter, r *http.Request, t proxyTarget) {
	if t.rest != "images" {
		writeStatus(w, notFoundPath(fmt.Sprintf("nodes/proxy serves only images, not %q", t.rest)))
		return
	}
	o, err := s.store.Get(store.Key{Kind: api.KindNode, Name: t.name})
	if err != nil {
		writeStatus(w, storeError(err, nodeInfo(), "", t.name))
		return
	}
	s.relay(w, r, o.(*api.Node), "/images", nil)
}

// podContainer reads the pod and resolves the container a request means:
// the one named, or the only one.
func (s *Server) podContainer(t proxyTarget, name string) (*api.Pod, string, *statusError) {
	info, _ := api.ByKind(api.KindPod)
	o, err := s.store.Get(store.Key{Kind: api.KindPod, Namespace: t.namespace, Name: t.name})
	if err != nil {
		return nil, "", storeError(err, &info, t.namespace, t.name)
	}
	pod := o.(*api.Pod)
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	switch {
	case name == "" && len(names) == 1:
		return pod, names[0], nil
	case name == "":
		return nil, "", badRequest("a container name must be specified for pod %s, choose one of: [%s]", pod.Name, strings.Join(names, " "))
	case !slices.Contains(names, name):
		return nil, "", badRequest("container %s is not valid for pod %s", name, pod.Name)
	}
	return pod, name, nil
}

// waitingContainer refuses a container that has never run (the kubelet's
// message); one waiting to restart still has its previous instance's log.
func waitingContainer(pod *api.Pod, ctr string, previous bool) *statusError {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != ctr || cs.State.Waiting == nil {
			continue
		}
		if previous || cs.RestartCount > 0 || cs.LastTerminationState.Terminated != nil {
			return nil
		}
		return badRequest("container %q in pod %q is waiting to start: %s", ctr, pod.Name, cs.State.Waiting.Reason)
	}
	return nil
}

// podNode reads the node a pod is bound to.
func (s *Server) podNode(pod *api.Pod) (*api.Node, *statusError) {
	if pod.Spec.NodeName == "" {
		return nil, badRequest("pod %q is not scheduled yet", pod.Name)
	}
	o, err := s.store.Get(store.Key{Kind: api.KindNode, Name: pod.Spec.NodeName})
	if err != nil {
		return nil, storeError(err, nodeInfo(), "", pod.Spec.NodeName)
	}
	return o.(*api.Node), nil
}

func nodeInfo() *api.ResourceInfo {
	info, _ := api.ByKind(api.KindNode)
	return &info
}

// agentAddress is host:port of a node's agent endpoint: its first
// InternalIP (else any address) and its kubelet endpoint port.
func agentAddress(n *api.Node) (string, *statusError) {
	e := n.Status.DaemonEndpoints
	if e == nil || e.KubeletEndpoint.Port <= 0 {
		return "", badRequest("node %q reports no agent endpoint (status.daemonEndpoints): a simulated node runs no containers", n.Name)
	}
	host := ""
	for _, want := range []api.NodeAddressType{api.NodeInternalIP, api.NodeExternalIP, api.NodeInternalDNS, api.NodeHostName} {
		for _, a := range n.Status.Addresses {
			if a.Type == want && a.Address != "" && host == "" {
				host = a.Address
			}
		}
	}
	if host == "" {
		return "", badRequest("node %q reports no address to reach its agent at", n.Name)
	}
	return net.JoinHostPort(host, strconv.Itoa(int(e.KubeletEndpoint.Port))), nil
}

// relay sends the request on to the agent of node at path?query (nil
// query: the request's own) and streams the answer back. An upgrade
// (exec) is relayed byte for byte in both directions.
func (s *Server) relay(w http.ResponseWriter, r *http.Request, node *api.Node, path string, query url.Values) {
	addr, serr := agentAddress(node)
	if serr != nil {
		writeStatus(w, serr)
		return
	}
	tc, err := nodeTLSConfig(s.nodeTLS(), node.Name)
	if err != nil {
		writeStatus(w, newStatus(http.StatusInternalServerError, api.ReasonInternalError, fmt.Sprintf("cannot reach node %q: %v", node.Name, err)))
		return
	}
	// The server's read timeout is for small API bodies: an image upload,
	// a followed log or an exec session lasts as long as it needs.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	target := &url.URL{Scheme: "https", Host: addr, Path: path}
	if query != nil {
		target.RawQuery = query.Encode()
	} else {
		target.RawQuery = r.URL.RawQuery
	}
	tr := &http.Transport{
		TLSClientConfig:     tc,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		// One connection per relayed request: a pooled connection was
		// verified for one node's name, and an address can change hands.
		DisableKeepAlives: true,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = addr
			// The agent trusts this server's certificate; the user's
			// credentials stay here.
			for _, h := range []string{"Authorization", "Cookie", headerUser, headerGroups, headerRole, headerNamespace} {
				pr.Out.Header.Del(h)
			}
		},
		Transport:     tr,
		FlushInterval: -1, // every chunk as it comes: log follows
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client left
			}
			s.log.Warn("relay to node agent", "node", node.Name, "addr", addr, "path", path, "err", err)
			writeStatus(w, newStatus(http.StatusBadGateway, api.ReasonInternalError,
				fmt.Sprintf("error talking to node %q at %s: %v", node.Name, addr, err)))
		},
	}
	proxy.ServeHTTP(w, r)
}

// nodeTLS is the TLS configuration this server dials agents with.
func (s *Server) nodeTLS() *tls.Config {
	if s.cfg.NodeTLS != nil {
		return s.cfg.NodeTLS
	}
	if t, ok := s.cfg.ForwardTransport.(*http.Transport); ok {
		return t.TLSClientConfig
	}
	return nil
}

// nodeTLSConfig derives the configuration to dial node's agent from base
// (this server's client certificate; the cluster CA as RootCAs, or a
// VerifyConnection that checks the chain against it): the agent must
// present a certificate of the cluster CA naming system:node:<node> in
// system:nodes. Host names are not checked: the certificate's identity
// is.
func nodeTLSConfig(base *tls.Config, node string) (*tls.Config, error) {
	if base == nil {
		return nil, errors.New("this server has no TLS settings for node agents")
	}
	c := base.Clone()
	verifyChain := c.VerifyConnection
	if verifyChain == nil {
		if c.InsecureSkipVerify || c.RootCAs == nil {
			return nil, errors.New("this server's TLS settings for node agents name no CA to verify them with")
		}
		roots := c.RootCAs
		verifyChain = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the agent presented no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
				return fmt.Errorf("the agent's certificate is not of the cluster CA: %w", err)
			}
			return nil
		}
	}
	c.InsecureSkipVerify = true // replaced by VerifyConnection
	c.ServerName = ""
	c.NextProtos = []string{"http/1.1"}
	want := auth.NodeUserPrefix + node
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := verifyChain(cs); err != nil {
			return err
		}
		leaf := cs.PeerCertificates[0]
		if leaf.Subject.CommonName != want || !slices.Contains(leaf.Subject.Organization, auth.GroupNodes) {
			return fmt.Errorf("the agent presented the certificate of %q, want %q in %s", leaf.Subject.CommonName, want, auth.GroupNodes)
		}
		return nil
	}
	return c, nil
}

// isUpgrade reports an exec upgrade request.
func isUpgrade(r *http.Request) bool {
	return hasToken(r.Header.Values("Connection"), "upgrade") && len(r.Header.Values("Upgrade")) > 0
}

func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// pathJoin joins path segments (names are DNS labels: nothing to escape).
func pathJoin(segs ...string) string { return strings.Join(segs, "/") }
