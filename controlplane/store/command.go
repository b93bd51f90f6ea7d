package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/skiffhq/skiff/api"
)

// opSetMember records a control-plane server's addresses (internal).
const opSetMember OpType = 100

// record is one write as it travels in a log entry.
type record struct {
	Type      OpType          `json:"t"`
	Kind      api.Kind        `json:"k,omitempty"`
	Namespace string          `json:"ns,omitempty"`
	Name      string          `json:"n,omitempty"`
	RV        uint64          `json:"rv,omitempty"`
	UID       api.UID         `json:"uid,omitempty"`
	Object    json.RawMessage `json:"o,omitempty"`
}

// command is the payload of one log entry: a timestamp chosen by the
// proposer (so every replica computes the same creationTimestamp) and the
// writes.
type command struct {
	Time int64    `json:"time"` // unix nanoseconds
	Ops  []record `json:"ops"`
}

// encodeOp turns an Op into its log record.
func encodeOp(op Op) (record, error) {
	switch op.Type {
	case OpCreate, OpUpdate, OpUpdateStatus:
		if op.Object == nil {
			return record{}, fmt.Errorf("%w: write without an object", ErrInvalid)
		}
		k := KeyOf(op.Object)
		if _, ok := api.ByKind(k.Kind); !ok {
			return record{}, fmt.Errorf("%w: unknown kind %q", ErrInvalid, k.Kind)
		}
		if k.Name == "" {
			return record{}, fmt.Errorf("%w: %s without a name", ErrInvalid, k.Kind)
		}
		b, err := json.Marshal(op.Object)
		if err != nil {
			return record{}, fmt.Errorf("encode %s %q: %w", k.Kind, k.Name, err)
		}
		rv, err := parseRV(op.Object.GetObjectMeta().ResourceVersion)
		if err != nil {
			return record{}, err
		}
		if op.Preconditions.ResourceVersion != 0 {
			rv = op.Preconditions.ResourceVersion
		}
		uid := op.Preconditions.UID
		return record{Type: op.Type, Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, RV: rv, UID: uid, Object: b}, nil
	case OpDelete:
		if _, ok := api.ByKind(op.Key.Kind); !ok {
			return record{}, fmt.Errorf("%w: unknown kind %q", ErrInvalid, op.Key.Kind)
		}
		return record{Type: OpDelete, Kind: op.Key.Kind, Namespace: op.Key.Namespace, Name: op.Key.Name,
			RV: op.Preconditions.ResourceVersion, UID: op.Preconditions.UID}, nil
	}
	return record{}, fmt.Errorf("%w: unknown operation %d", ErrInvalid, op.Type)
}

func parseRV(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: metadata.resourceVersion %q is not a number", ErrInvalid, s)
	}
	return v, nil
}

// appendCommand encodes a command from records already marshalled by their
// callers, so the encoding work stays on the callers' goroutines.
func appendCommand(buf *bytes.Buffer, unixNano int64, recs [][]byte) []byte {
	buf.Reset()
	buf.WriteString(`{"time":`)
	buf.WriteString(strconv.FormatInt(unixNano, 10))
	buf.WriteString(`,"ops":[`)
	for i, r := range recs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(r)
	}
	buf.WriteString("]}")
	return append([]byte(nil), buf.Bytes()...)
}

// uidFor derives an object's uid from the entry that created it, so every
// replica assigns the same one.
func uidFor(index uint64, pos int, unixNano int64) api.UID {
	var b [24]byte
	putUint64(b[0:], index)
	putUint64(b[8:], uint64(pos))
	putUint64(b[16:], uint64(unixNano))
	sum := sha256.Sum256(b[:])
	h := hex.EncodeToString(sum[:16])
	// Shape it as an RFC 4122 version 4 UUID string.
	return api.UID(h[0:8] + "-" + h[8:12] + "-4" + h[13:16] + "-a" + h[17:20] + "-" + h[20:32])
}

func putUint64(b []byte, v uint64) {
	for i := 0; i < 8; i++ {
		b[i] = byte(v >> (56 - 8*i))
	}
}
