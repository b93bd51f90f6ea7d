package api

// Event records something that happened to an object, for `skiff get
// events` and `describe`. Repeats of the same event bump Count and
// LastTimestamp instead of creating new objects.
type Event struct {
	TypeMeta       `json:",inline"`
	ObjectMeta     `json:"metadata,omitempty"`
	InvolvedObject ObjectReference `json:"involvedObject"`
	// Reason is a short CamelCase machine-readable reason ("Scheduled").
	Reason         string      `json:"reason,omitempty"`
	Message        string      `json:"message,omitempty"`
	Source         EventSource `json:"source,omitempty"`
	FirstTimestamp *Time       `json:"firstTimestamp,omitempty"`
	LastTimestamp  *Time       `json:"lastTimestamp,omitempty"`
	Count          int32       `json:"count,omitempty"`
	Type           EventType   `json:"type,omitempty"`
	// ReportingController is the component that emitted the event
	// ("skiff.io/scheduler"); serialised as reportingComponent, as in
	// Kubernetes.
	ReportingController string `json:"reportingComponent,omitempty"`
	ReportingInstance   string `json:"reportingInstance,omitempty"`
}

// EventType is the severity of an event.
type EventType string

// Event types.
const (
	EventTypeNormal  EventType = "Normal"
	EventTypeWarning EventType = "Warning"
)

// EventSource is the component (and host) that reported an event.
type EventSource struct {
	Component string `json:"component,omitempty"`
	Host      string `json:"host,omitempty"`
}
