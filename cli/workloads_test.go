package cli

import (
	"strings"
	"testing"

	"github.com/skiffhq/skiff/api"
)

func TestRolloutProgress(t *testing.T) {
	three := int32(3)
	mk := func(gen, observed int64, st api.DeploymentStatus) *api.Deployment {
		d := &api.Deployment{}
		d.Name, d.Generation = "web", gen
		d.Spec.Replicas = &three
		st.ObservedGeneration = observed
		d.Status = st
		return d
	}
	cases := []struct {
		d    *api.Deployment
		want string
		done bool
	}{
		{mk(2, 1, api.DeploymentStatus{}), "spec update to be observed", false},
		{mk(2, 2, api.DeploymentStatus{Replicas: 4, UpdatedReplicas: 1}), "1 out of 3 new replicas have been updated", false},
		{mk(2, 2, api.DeploymentStatus{Replicas: 4, UpdatedReplicas: 3}), "1 old replicas are pending termination", false},
		{mk(2, 2, api.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 2}), "2 of 3 updated replicas are available", false},
		{mk(2, 2, api.DeploymentStatus{Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}), "successfully rolled out", true},
	}
	for _, c := range cases {
		msg, done := rolloutProgress(c.d)
		if !strings.Contains(msg, c.want) || done != c.done {
			t.Errorf("%+v: %q %v, want %q %v", c.d.Status, msg, done, c.want, c.done)
		}
	}
}

func TestDeploymentArg(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
		err  bool
	}{
		{[]string{"deployment/web"}, "web", false},
		{[]string{"deploy/web"}, "web", false},
		{[]string{"deploy", "web"}, "web", false},
		{[]string{"web"}, "web", false},
		{[]string{"svc/web"}, "", true},
		{[]string{"pods", "web"}, "", true},
	} {
		got, err := deploymentArg(c.args)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%v: %q %v", c.args, got, err)
		}
	}
}
