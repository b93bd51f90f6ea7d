package linear

import (
	"fmt"
	"net/http"

	"github.com/anishathalye/porcupine"
)

// Op is one kind of operation on a key.
type Op string

// Operations: create, replace, delete and read one Namespace.
const (
	OpCreate Op = "create"
	OpPut    Op = "put"
	OpDelete Op = "delete"
	OpGet    Op = "get"
)

// IsWrite reports whether op may change the register.
func (op Op) IsWrite() bool { return op != OpGet }

// Input is one operation: Op on Key (a Namespace's name), with Value (its
// label "v") for create and put.
type Input struct {
	Op    Op
	Key   string
	Value string
}

// Output is what the cluster answered. Unknown: no answer that says
// whether a write took effect (a timeout, a dropped connection, a 5xx
// marked unknown); the model lets such a write happen or not.
type Output struct {
	Status  int
	Value   string
	Unknown bool
}

// register is the model's state of one key.
type register struct {
	Exists bool
	Value  string
}

// Model is the porcupine model of the API as a set of registers, one per
// key (histories are partitioned by key). Create answers 201 or 409, put
// 200 or 404, delete 200 or 404, get 200 with the value or 404; a write
// whose outcome is unknown may or may not have taken effect.
func Model() porcupine.Model {
	m := &porcupine.NondeterministicModel{
		Partition:         partitionByKey,
		Init:              func() []any { return []any{register{}} },
		Step:              step,
		Equal:             func(a, b any) bool { return a.(register) == b.(register) },
		DescribeOperation: describe,
	}
	return m.ToModel()
}

func partitionByKey(h []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var keys []string
	for _, op := range h {
		k := op.Input.(Input).Key
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], op)
	}
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

func step(state, input, output any) []any {
	s, in, out := state.(register), input.(Input), output.(Output)
	next, status := s, 0
	switch in.Op {
	case OpCreate:
		if s.Exists {
			status = http.StatusConflict
		} else {
			next, status = register{true, in.Value}, http.StatusCreated
		}
	case OpPut:
		if s.Exists {
			next, status = register{true, in.Value}, http.StatusOK
		} else {
			status = http.StatusNotFound
		}
	case OpDelete:
		if s.Exists {
			next, status = register{}, http.StatusOK
		} else {
			status = http.StatusNotFound
		}
	case OpGet:
		if s.Exists {
			if out.Status == http.StatusOK && out.Value == s.Value {
				return []any{s}
			}
			return nil
		}
		if out.Status == http.StatusNotFound {
			return []any{s}
		}
		return nil
	}
	if out.Unknown {
		return []any{s, next}
	}
	if out.Status == status {
		return []any{next}
	}
	return nil
}

func describe(input, output any) string {
	in, out := input.(Input), output.(Output)
	if out.Unknown {
		return fmt.Sprintf("%s(%s, %s) -> unknown", in.Op, in.Key, in.Value)
	}
	return fmt.Sprintf("%s(%s, %s) -> %d %s", in.Op, in.Key, in.Value, out.Status, out.Value)
}
