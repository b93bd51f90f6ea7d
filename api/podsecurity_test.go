package api

import (
	"testing"
)

// privilegedPod asks for everything the secure default policy forbids.
func privilegedPod() *Pod {
	return &Pod{
		TypeMeta:   TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: ObjectMeta{Name: "agent", Namespace: "kube-system"},
		Spec: PodSpec{
			HostNetwork: true, HostPID: true, HostIPC: true,
			Containers: []Container{
				{Name: "plain", Image: "busybox"},
				{Name: "root", Image: "agent", SecurityContext: &SecurityContext{
					Privileged:               ptrTo(true),
					Capabilities:             &Capabilities{Add: []Capability{"NET_ADMIN", "SYS_TIME"}, Drop: []Capability{CapabilityAll}},
					AllowPrivilegeEscalation: ptrTo(true),
				}},
			},
		},
	}
}

func TestCheckPodPolicy(t *testing.T) {
	const c1 = "spec.containers[1].securityContext"
	tests := []struct {
		name   string
		mutate func(s *PodSpec)
		policy PodPolicy
		want   []string
	}{
		{"every violation at once", func(*PodSpec) {}, PodPolicy{}, []string{
			c1 + `.allowPrivilegeEscalation: Forbidden: privilege escalation is not allowed by this cluster's policy (server flag --allow-privileged)`,
			c1 + `.capabilities.add[0]: Forbidden: adding capability "NET_ADMIN" is not allowed by this cluster's policy (server flag --allow-privileged)`,
			c1 + `.capabilities.add[1]: Forbidden: adding capability "SYS_TIME" is not allowed by this cluster's policy (server flag --allow-privileged)`,
			c1 + `.privileged: Forbidden: privileged containers are not allowed by this cluster's policy (server flag --allow-privileged)`,
			`spec.hostIPC: Forbidden: sharing the host's IPC namespace is not allowed by this cluster's policy (server flag --allow-privileged)`,
			`spec.hostNetwork: Forbidden: sharing the host's network namespace is not allowed by this cluster's policy (server flag --allow-privileged)`,
			`spec.hostPID: Forbidden: sharing the host's PID namespace is not allowed by this cluster's policy (server flag --allow-privileged)`,
		}},
		{"AllowPrivileged allows everything", func(*PodSpec) {}, PodPolicy{AllowPrivileged: true}, nil},
		{"dropping capabilities and hardening are allowed", func(s *PodSpec) {
			*s = PodSpec{Containers: []Container{{Name: "c", Image: "busybox", SecurityContext: &SecurityContext{
				Privileged:               ptrTo(false),
				AllowPrivilegeEscalation: ptrTo(false),
				Capabilities:             &Capabilities{Drop: []Capability{CapabilityAll}},
				RunAsUser:                ptrTo[int64](0),
				ReadOnlyRootFilesystem:   ptrTo(true),
			}}}}
		}, PodPolicy{}, nil},
		{"empty capabilities.add is allowed", func(s *PodSpec) {
			*s = PodSpec{Containers: []Container{{Name: "c", SecurityContext: &SecurityContext{Capabilities: &Capabilities{Add: []Capability{}}}}}}
		}, PodPolicy{}, nil},
		{"hostNetwork alone", func(s *PodSpec) { *s = PodSpec{HostNetwork: true, Containers: []Container{{Name: "c"}}} }, PodPolicy{}, []string{
			`spec.hostNetwork: Forbidden: sharing the host's network namespace is not allowed by this cluster's policy (server flag --allow-privileged)`,
		}},
		{"privileged alone", func(s *PodSpec) {
			*s = PodSpec{Containers: []Container{{Name: "c", SecurityContext: &SecurityContext{Privileged: ptrTo(true)}}}}
		}, PodPolicy{}, []string{
			`spec.containers[0].securityContext.privileged: Forbidden: privileged containers are not allowed by this cluster's policy (server flag --allow-privileged)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := privilegedPod()
			tt.mutate(&p.Spec)
			errs := CheckPodPolicy(&p.Spec, "spec", tt.policy)
			for _, e := range errs {
				if e.Type != FieldForbidden {
					t.Errorf("%s: type %s, want %s", e.Field, e.Type, FieldForbidden)
				}
			}
			checkErrors(t, errs, tt.want)
			if len(tt.want) == 0 && errs != nil {
				t.Errorf("CheckPodPolicy = %#v, want nil", errs)
			}
		})
	}
}

func TestPolicyForObject(t *testing.T) {
	const msg = ": Forbidden: privileged containers are not allowed by this cluster's policy (server flag --allow-privileged)"
	privileged := &SecurityContext{Privileged: ptrTo(true)}

	dep := validDeployment(t)
	dep.Spec.Template.Spec.Containers[0].SecurityContext = privileged
	ds := &DaemonSet{Spec: DaemonSetSpec{Template: dep.Spec.Template}}
	pod := &Pod{Spec: dep.Spec.Template.Spec}

	tests := []struct {
		name   string
		o      Object
		policy PodPolicy
		want   []string
	}{
		{"pod", pod, PodPolicy{}, []string{"spec.containers[0].securityContext.privileged" + msg}},
		{"deployment template", dep, PodPolicy{}, []string{"spec.template.spec.containers[0].securityContext.privileged" + msg}},
		{"daemonset template", ds, PodPolicy{}, []string{"spec.template.spec.containers[0].securityContext.privileged" + msg}},
		{"deployment allowed", dep, PodPolicy{AllowPrivileged: true}, nil},
		{"kind without a pod spec", validService(t), PodPolicy{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErrors(t, PolicyForObject(tt.o, tt.policy), tt.want)
		})
	}

	// Policy is separate from validation: a privileged template is valid.
	if errs := Validate(dep); errs != nil {
		t.Errorf("Validate(privileged deployment) = %v, want nil", errs)
	}
}
