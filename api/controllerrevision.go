package api

// ControllerRevision is an immutable snapshot of the pod template a
// controller rolled out, numbered in rollout order. The Deployment
// controller keeps one per distinct template (named <deployment>-<hash>)
// so `skiff rollout history` can list them and `skiff rollout undo` can
// bring one back.
//
// Unlike Kubernetes, whose data is a raw patch the owning controller alone
// understands, Data is typed: the pod template itself, still serialised
// as "data". Data is immutable; Revision is not, because a template rolled
// out again (an undo) takes the next number, as in Kubernetes.
type ControllerRevision struct {
	TypeMeta   `json:",inline"`
	ObjectMeta `json:"metadata,omitempty"`
	Data       PodTemplateSpec `json:"data"`
	Revision   int64           `json:"revision"`
}

// Annotations the Deployment controller and `skiff rollout` share, as
// Kubernetes names them.
const (
	// RevisionAnnotation on a Deployment is the number of the
	// ControllerRevision of its current template.
	RevisionAnnotation = "deployment.kubernetes.io/revision"
	// ChangeCauseAnnotation says why a template changed. The controller
	// copies a Deployment's onto the revision of its current template;
	// `skiff rollout history` prints it.
	ChangeCauseAnnotation = "kubernetes.io/change-cause"
)
