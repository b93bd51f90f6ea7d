package api

import (
	"fmt"
	"sort"
	"strings"
)

// LabelSelector is the structured selector of manifests (matchLabels and
// matchExpressions, all ANDed). A nil selector matches nothing; an empty
// one matches everything.
type LabelSelector struct {
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorOperator relates a label to a set of values.
type LabelSelectorOperator string

// Label selector operators.
const (
	LabelSelectorOpIn           LabelSelectorOperator = "In"
	LabelSelectorOpNotIn        LabelSelectorOperator = "NotIn"
	LabelSelectorOpExists       LabelSelectorOperator = "Exists"
	LabelSelectorOpDoesNotExist LabelSelectorOperator = "DoesNotExist"
)

// LabelSelectorRequirement is one expression of a LabelSelector.
type LabelSelectorRequirement struct {
	Key      string                `json:"key"`
	Operator LabelSelectorOperator `json:"operator"`
	Values   []string              `json:"values,omitempty"`
}

// AsSelector converts ls to a Selector. A nil ls gives Nothing().
func (ls *LabelSelector) AsSelector() (Selector, error) {
	if ls == nil {
		return Nothing(), nil
	}
	reqs := make(requirements, 0, len(ls.MatchLabels)+len(ls.MatchExpressions))
	for k, v := range ls.MatchLabels {
		reqs = append(reqs, requirement{key: k, op: opEquals, values: []string{v}})
	}
	for i, e := range ls.MatchExpressions {
		var op selectorOp
		switch e.Operator {
		case LabelSelectorOpIn:
			op = opIn
		case LabelSelectorOpNotIn:
			op = opNotIn
		case LabelSelectorOpExists:
			op = opExists
		case LabelSelectorOpDoesNotExist:
			op = opDoesNotExist
		default:
			return nil, fmt.Errorf("matchExpressions[%d]: unsupported operator %q", i, e.Operator)
		}
		switch op {
		case opIn, opNotIn:
			if len(e.Values) == 0 {
				return nil, fmt.Errorf("matchExpressions[%d]: operator %s needs at least one value", i, e.Operator)
			}
		default:
			if len(e.Values) != 0 {
				return nil, fmt.Errorf("matchExpressions[%d]: operator %s takes no values", i, e.Operator)
			}
		}
		vals := append([]string(nil), e.Values...)
		sort.Strings(vals)
		reqs = append(reqs, requirement{key: e.Key, op: op, values: vals})
	}
	sort.SliceStable(reqs, func(i, j int) bool { return reqs[i].key < reqs[j].key })
	return reqs, nil
}

// MatchesLabels reports whether labels satisfy ls (nil matches nothing).
// Invalid selectors match nothing; Validate reports them.
func (ls *LabelSelector) MatchesLabels(labels map[string]string) bool {
	if ls == nil {
		return false
	}
	for k, v := range ls.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, e := range ls.MatchExpressions {
		v, ok := labels[e.Key]
		switch e.Operator {
		case LabelSelectorOpIn:
			if !ok || !contains(e.Values, v) {
				return false
			}
		case LabelSelectorOpNotIn:
			if ok && contains(e.Values, v) {
				return false
			}
		case LabelSelectorOpExists:
			if !ok {
				return false
			}
		case LabelSelectorOpDoesNotExist:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// String renders ls in the kubectl -l syntax.
func (ls *LabelSelector) String() string {
	s, err := ls.AsSelector()
	if err != nil {
		return "<invalid selector: " + strings.ReplaceAll(err.Error(), ">", "") + ">"
	}
	return s.String()
}
