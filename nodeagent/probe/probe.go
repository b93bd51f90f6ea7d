package probe

import (
	"time"

	"github.com/skiffhq/skiff/api"
	"github.com/skiffhq/skiff/nodeagent/runtime"
)

// Kind is which of a container's probes a result belongs to.
type Kind string

// Probe kinds, spelled as in the kubelet's messages.
const (
	Liveness  Kind = "Liveness"
	Readiness Kind = "Readiness"
	Startup   Kind = "Startup"
)

// kinds in the order workers are started: startup first, as it gates the
// other two.
var kinds = []Kind{Startup, Liveness, Readiness}

// Result is a probe's current verdict on a container.
type Result int

// Results.
const (
	Unknown Result = iota // not decided yet (a startup probe before its first run)
	Success
	Failure
)

// String returns "Unknown", "Success" or "Failure".
func (r Result) String() string {
	switch r {
	case Success:
		return "Success"
	case Failure:
		return "Failure"
	default:
		return "Unknown"
	}
}

// initial is what a new container's probe of kind k reports before its
// first verdict: not ready, alive, not yet started.
func initial(k Kind) Result {
	switch k {
	case Readiness:
		return Failure
	case Liveness:
		return Success
	default:
		return Unknown
	}
}

// Pod is what the Manager needs of a pod: where it is and its containers.
type Pod struct {
	UID       api.UID
	Namespace string
	Name      string
	// IP is the pod's address, the host of probes that name none. Probes
	// that need it wait while it is empty.
	IP string
	// Terminating stops liveness and startup probes (the pod is being
	// deleted; its containers are shutting down).
	Terminating bool
	Containers  []Container
}

// Container is one container of a pod as the Manager sees it.
type Container struct {
	// Spec is the container's spec: its name, probes and ports.
	Spec api.Container
	// ID is the container that runs now; empty while none runs (created,
	// exited, waiting for a restart). A new ID means a new container:
	// its results start over.
	ID runtime.ContainerID
	// StartedAt is when that container started; initialDelaySeconds
	// counts from it.
	StartedAt time.Time
	// WasReady and WasStarted: the pod's last reported status says this
	// container (same ID) was ready, or started. Its readiness or startup
	// result starts from Success instead of the first probe, so that an
	// agent that restarts and adopts running containers does not mark
	// them unready (and empty their Services' endpoints) until a probe
	// has run again. Only for a container the Manager has not seen yet.
	WasReady, WasStarted bool
}

// Update is a change of one container's probe result.
type Update struct {
	PodUID      api.UID
	Container   string
	ContainerID runtime.ContainerID
	Kind        Kind
	Result      Result
	// Message says why, as the kubelet's event would ("Readiness probe
	// failed: HTTP probe failed with statuscode: 503"); empty on success.
	Message string
}

// probeFor returns the container's probe of kind k, or nil.
func probeFor(c *api.Container, k Kind) *api.Probe {
	switch k {
	case Liveness:
		return c.LivenessProbe
	case Readiness:
		return c.ReadinessProbe
	default:
		return c.StartupProbe
	}
}

// withDefaults returns p with the API's defaults where it has zeros, so a
// probe that skipped defaulting still runs sensibly.
func withDefaults(p api.Probe) api.Probe {
	if p.PeriodSeconds <= 0 {
		p.PeriodSeconds = 10
	}
	if p.TimeoutSeconds <= 0 {
		p.TimeoutSeconds = 1
	}
	if p.SuccessThreshold <= 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold <= 0 {
		p.FailureThreshold = 3
	}
	if p.InitialDelaySeconds < 0 {
		p.InitialDelaySeconds = 0
	}
	return p
}

func seconds(n int32) time.Duration { return time.Duration(n) * time.Second }
