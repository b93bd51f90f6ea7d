package api

func (v *validator) template(t *PodTemplateSpec, selector *LabelSelector, p, kind string) {
	if selector == nil {
		v.required("spec.selector", "")
	} else {
		v.labelSelector(selector, "spec.selector")
		if len(selector.MatchLabels)+len(selector.MatchExpressions) == 0 {
			v.invalid("spec.selector", selector, "empty selector is invalid for "+kind)
		} else if !selector.MatchesLabels(t.Labels) {
			v.invalid(p+".metadata.labels", t.Labels, "`selector` does not match template `labels`")
		}
	}
	v.labels(t.Labels, p+".metadata.labels")
	v.annotations(t.Annotations, p+".metadata.annotations")
	v.podSpec(&t.Spec, p+".spec")
	if t.Spec.RestartPolicy != RestartPolicyAlways && t.Spec.RestartPolicy != "" {
		v.notSupported(p+".spec.restartPolicy", t.Spec.RestartPolicy, "Always")
	}
}

func (v *validator) deployment(s *DeploymentSpec) {
	if s.Replicas != nil {
		v.nonNegative("spec.replicas", int64(*s.Replicas))
	}
	v.template(&s.Template, s.Selector, "spec.template", "deployment")
	switch s.Strategy.Type {
	case RecreateDeploymentStrategyType:
		if s.Strategy.RollingUpdate != nil {
			v.forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'")
		}
	case RollingUpdateDeploymentStrategyType:
		if ru := s.Strategy.RollingUpdate; ru != nil {
			v.rollingUpdate(ru.MaxSurge, ru.MaxUnavailable, "spec.strategy.rollingUpdate")
		}
	case "":
		v.required("spec.strategy.type", "")
	default:
		v.notSupported("spec.strategy.type", s.Strategy.Type, "Recreate", "RollingUpdate")
	}
	v.nonNegative("spec.minReadySeconds", int64(s.MinReadySeconds))
	if s.RevisionHistoryLimit != nil {
		v.nonNegative("spec.revisionHistoryLimit", int64(*s.RevisionHistoryLimit))
	}
	if d := s.ProgressDeadlineSeconds; d != nil {
		v.nonNegative("spec.progressDeadlineSeconds", int64(*d))
		if *d <= s.MinReadySeconds {
			v.invalid("spec.progressDeadlineSeconds", *d, "must be greater than minReadySeconds")
		}
	}
}

func (v *validator) daemonSet(s *DaemonSetSpec) {
	v.template(&s.Template, s.Selector, "spec.template", "daemonset")
	switch s.UpdateStrategy.Type {
	case OnDeleteDaemonSetStrategyType:
		if s.UpdateStrategy.RollingUpdate != nil {
			v.forbidden("spec.updateStrategy.rollingUpdate", "may not be specified when strategy `type` is 'OnDelete'")
		}
	case RollingUpdateDaemonSetStrategyType:
		if ru := s.UpdateStrategy.RollingUpdate; ru != nil {
			v.rollingUpdate(ru.MaxSurge, ru.MaxUnavailable, "spec.updateStrategy.rollingUpdate")
		}
	case "":
		v.required("spec.updateStrategy.type", "")
	default:
		v.notSupported("spec.updateStrategy.type", s.UpdateStrategy.Type, "OnDelete", "RollingUpdate")
	}
	v.nonNegative("spec.minReadySeconds", int64(s.MinReadySeconds))
	if s.RevisionHistoryLimit != nil {
		v.nonNegative("spec.revisionHistoryLimit", int64(*s.RevisionHistoryLimit))
	}
}

// controllerRevision checks the revision number and the template. The
// template has no selector to match: it was its owner's, checked then.
func (v *validator) controllerRevision(r *ControllerRevision) {
	if r.Revision < 1 {
		v.invalid("revision", r.Revision, "must be greater than or equal to 1")
	}
	v.labels(r.Data.Labels, "data.metadata.labels")
	v.annotations(r.Data.Annotations, "data.metadata.annotations")
	v.podSpec(&r.Data.Spec, "data.spec")
}

// rollingUpdate checks maxSurge and maxUnavailable: non-negative ints or
// percentages (maxUnavailable at most 100%), not both zero.
func (v *validator) rollingUpdate(surge, unavail *IntOrString, p string) {
	s := v.intOrPercent(surge, p+".maxSurge")
	u := v.intOrPercent(unavail, p+".maxUnavailable")
	if unavail != nil && unavail.IsPercent() && u > 100 {
		v.invalid(p+".maxUnavailable", unavail.StrVal, "must not be greater than 100%")
	}
	if s == 0 && u == 0 && surge != nil && unavail != nil {
		v.invalid(p+".maxUnavailable", unavail.String(), "may not be 0 when `maxSurge` is 0")
	}
}

// intOrPercent checks an int-or-percent and returns its number (-1 when
// invalid, 0 when nil).
func (v *validator) intOrPercent(x *IntOrString, p string) int {
	if x == nil {
		return 0
	}
	if x.Type == IntOrStringInt {
		v.nonNegative(p, int64(x.IntVal))
		return int(x.IntVal)
	}
	n, err := x.percent()
	if err != nil {
		v.invalid(p, x.StrVal, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')")
		return -1
	}
	return n
}
