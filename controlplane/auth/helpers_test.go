package auth

import (
	"time"

	"github.com/skiffhq/skiff/api"
)

// Fixture builders for the tests of this package.

func nodeUser(name string) User {
	return User{Name: NodeUserPrefix + name, Groups: []string{GroupNodes}, Source: SourceCert}
}

func adminCert() User {
	return User{Name: "admin", Groups: []string{GroupMasters}, Source: SourceCert}
}

func serverCert() User {
	return User{Name: "server-1", Groups: []string{GroupServers}, Source: SourceCert}
}

func tokenUser(role Role, namespace string) User {
	return User{Name: "token-" + string(role), Source: SourceToken, Role: role, Namespace: namespace}
}

// fakePods is an in-memory PodLookup: "namespace/name" -> node.
type fakePods map[string]string

var _ PodLookup = fakePods(nil)

func (f fakePods) PodNode(namespace, name string) (string, bool) {
	n, ok := f[namespace+"/"+name]
	return n, ok
}

func testNode(name string) *api.Node {
	return &api.Node{
		TypeMeta:   api.TypeMeta{Kind: string(api.KindNode), APIVersion: "v1"},
		ObjectMeta: api.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
	}
}

func testPod(namespace, name, node string) *api.Pod {
	return &api.Pod{
		TypeMeta:   api.TypeMeta{Kind: string(api.KindPod), APIVersion: "v1"},
		ObjectMeta: api.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       api.PodSpec{NodeName: node, Containers: []api.Container{{Name: "c", Image: "nginx"}}},
	}
}

// fakeClock is a manual clock for the limiter.
type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }
