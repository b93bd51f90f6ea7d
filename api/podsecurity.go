package api

import "fmt"

// PodPolicy is the cluster's admission policy on what pods may ask of their
// node. The zero value is the secure default: no privileged containers, no
// added capabilities, no privilege escalation, no host namespaces.
// Containers still get the runtime's default capability set and seccomp
// profile; the policy only limits what a manifest may add to them.
type PodPolicy struct {
	// AllowPrivileged lifts every restriction (server flag
	// --allow-privileged), for clusters that run system agents (CNI,
	// storage drivers, monitoring) as pods.
	AllowPrivileged bool
}

// policyHint tells the user which switch decides, so a rejection is
// actionable without reading docs.
const policyHint = "not allowed by this cluster's policy (server flag --allow-privileged)"

// CheckPodPolicy returns every field of spec that p forbids, each a
// FieldForbidden error at its path under path ("spec",
// "spec.template.spec"). It checks policy only; Validate checks syntax.
func CheckPodPolicy(spec *PodSpec, path string, p PodPolicy) FieldErrors {
	if p.AllowPrivileged {
		return nil
	}
	v := &validator{}
	if spec.HostNetwork {
		v.forbidden(path+".hostNetwork", "sharing the host's network namespace is "+policyHint)
	}
	if spec.HostPID {
		v.forbidden(path+".hostPID", "sharing the host's PID namespace is "+policyHint)
	}
	if spec.HostIPC {
		v.forbidden(path+".hostIPC", "sharing the host's IPC namespace is "+policyHint)
	}
	for i := range spec.Containers {
		sc := spec.Containers[i].SecurityContext
		if sc == nil {
			continue
		}
		sp := idx(path+".containers", i) + ".securityContext"
		if isTrue(sc.Privileged) {
			v.forbidden(sp+".privileged", "privileged containers are "+policyHint)
		}
		if c := sc.Capabilities; c != nil {
			for j, name := range c.Add {
				v.forbidden(idx(sp+".capabilities.add", j), fmt.Sprintf("adding capability %q is %s", name, policyHint))
			}
		}
		if isTrue(sc.AllowPrivilegeEscalation) {
			v.forbidden(sp+".allowPrivilegeEscalation", "privilege escalation is "+policyHint)
		}
	}
	if len(v.errs) == 0 {
		return nil
	}
	sortFieldErrors(v.errs)
	return v.errs
}

// PolicyForObject applies CheckPodPolicy to the pod spec an object carries:
// a Pod's spec, or a Deployment's or DaemonSet's pod template, so a
// forbidden template is refused when it is written rather than when its
// controller creates pods. Other kinds yield nil: a ControllerRevision's
// template runs only once `rollout undo` copies it back into its
// Deployment, which is checked then.
func PolicyForObject(o Object, p PodPolicy) FieldErrors {
	switch o := o.(type) {
	case *Pod:
		return CheckPodPolicy(&o.Spec, "spec", p)
	case *Deployment:
		return CheckPodPolicy(&o.Spec.Template.Spec, "spec.template.spec", p)
	case *DaemonSet:
		return CheckPodPolicy(&o.Spec.Template.Spec, "spec.template.spec", p)
	}
	return nil
}
