package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	jsoniter "github.com/json-iterator/go"

	"github.com/skiffhq/skiff/api"
)

// Internal operations on system tables (not API objects): the record's
// Kind is the table, Name the key, Object the value.
const (
	opPutSystem    OpType = 100
	opDeleteSystem OpType = 101
)

// record is one write as it travels in a log entry.
type record struct {
	Type      OpType
	Kind      api.Kind
	Namespace string
	Name      string
	RV        uint64
	UID       api.UID
	Object    []byte // the object's JSON; a system record's value
}

// command is the payload of one log entry: a timestamp chosen by the
// proposer (so every replica computes the same creationTimestamp) and the
// writes.
type command struct {
	Time int64 // unix nanoseconds
	Ops  []record
}

// Log entries are binary frames, so a replica parses each object's JSON
// once:
//
//	'S' 1 | time (varint) | count (uvarint) | count x record
//	record: type (byte) | kind | namespace | name | rv (uvarint) | uid | object
//	strings and object: length (uvarint) + bytes
const (
	frameMagic   = 'S'
	frameVersion = 1
)

// marshal appends r's frame to b.
func (r record) marshal(b []byte) []byte {
	b = append(b, byte(r.Type))
	b = appendString(b, string(r.Kind))
	b = appendString(b, r.Namespace)
	b = appendString(b, r.Name)
	b = binary.AppendUvarint(b, r.RV)
	b = appendString(b, string(r.UID))
	b = binary.AppendUvarint(b, uint64(len(r.Object)))
	return append(b, r.Object...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errFrame = errors.New("malformed log entry")

type frameReader struct {
	b   []byte
	err error
}

func (f *frameReader) uvarint() uint64 {
	if f.err != nil {
		return 0
	}
	v, n := binary.Uvarint(f.b)
	if n <= 0 {
		f.err = errFrame
		return 0
	}
	f.b = f.b[n:]
	return v
}

func (f *frameReader) bytes() []byte {
	n := f.uvarint()
	if f.err != nil {
		return nil
	}
	if n > uint64(len(f.b)) {
		f.err = errFrame
		return nil
	}
	v := f.b[:n:n]
	f.b = f.b[n:]
	return v
}

func (f *frameReader) byte() byte {
	if f.err != nil || len(f.b) == 0 {
		f.err = errFrame
		return 0
	}
	v := f.b[0]
	f.b = f.b[1:]
	return v
}

// decodeCommand parses a log entry.
func decodeCommand(data []byte) (command, error) {
	f := &frameReader{b: data}
	if f.byte() != frameMagic || f.byte() != frameVersion {
		return command{}, errFrame
	}
	t, n := binary.Varint(f.b)
	if n <= 0 {
		return command{}, errFrame
	}
	f.b = f.b[n:]
	count := f.uvarint()
	if f.err != nil || count > uint64(len(data)) {
		return command{}, errFrame
	}
	cmd := command{Time: t, Ops: make([]record, 0, count)}
	for i := uint64(0); i < count; i++ {
		var r record
		r.Type = OpType(f.byte())
		r.Kind = api.Kind(f.bytes())
		r.Namespace = string(f.bytes())
		r.Name = string(f.bytes())
		r.RV = f.uvarint()
		r.UID = api.UID(f.bytes())
		r.Object = f.bytes()
		if f.err != nil {
			return command{}, f.err
		}
		cmd.Ops = append(cmd.Ops, r)
	}
	if len(f.b) != 0 {
		return command{}, errFrame
	}
	return cmd, nil
}

// fastJSON encodes and decodes objects on the write path: encoding/json's
// rules (same accepted input), faster, and without the HTML escaping and
// sorted map keys that nobody reads here. Every replica runs the same code,
// so decoding stays deterministic.
var fastJSON = jsoniter.Config{EscapeHTML: false, SortMapKeys: false, ValidateJsonRawMessage: true}.Froze()

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
		b, err := fastJSON.Marshal(op.Object)
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
	case OpBind:
		if op.Key.Kind != api.KindPod || op.Key.Name == "" || op.Node == "" {
			return record{}, fmt.Errorf("%w: a binding needs a pod and a node", ErrInvalid)
		}
		return record{Type: OpBind, Kind: api.KindPod, Namespace: op.Key.Namespace, Name: op.Key.Name,
			RV: op.Preconditions.ResourceVersion, UID: op.Preconditions.UID, Object: []byte(op.Node)}, nil
	case OpDelete:
		if _, ok := api.ByKind(op.Key.Kind); !ok {
			return record{}, fmt.Errorf("%w: unknown kind %q", ErrInvalid, op.Key.Kind)
		}
		return record{Type: OpDelete, Kind: op.Key.Kind, Namespace: op.Key.Namespace, Name: op.Key.Name,
			RV: op.Preconditions.ResourceVersion, UID: op.Preconditions.UID, Object: encodeGrace(op.Grace)}, nil
	}
	return record{}, fmt.Errorf("%w: unknown operation %d", ErrInvalid, op.Type)
}

// A delete record's Object is its grace: empty deletes at once (so does
// an entry written before graceful deletion existed), "d" gives a pod its
// own terminationGracePeriodSeconds, digits that many seconds.
const graceDefault = "d"

func encodeGrace(g *int64) []byte {
	switch {
	case g == nil:
		return []byte(graceDefault)
	case *g <= 0:
		return nil
	}
	return strconv.AppendInt(nil, *g, 10)
}

// decodeGrace returns the grace of a delete record for pod (0: at once).
func decodeGrace(b []byte, pod *api.Pod) int64 {
	switch string(b) {
	case "":
		return 0
	case graceDefault:
		if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
			return max(*g, 0)
		}
		return api.DefaultTerminationGracePeriodSeconds
	}
	g, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || g < 0 {
		return 0
	}
	return g
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

// appendCommand encodes a command from records already framed by their
// callers, so the encoding work stays on the callers' goroutines.
func appendCommand(unixNano int64, recs [][]byte) []byte {
	size := 2 + binary.MaxVarintLen64*2
	for _, r := range recs {
		size += len(r)
	}
	b := make([]byte, 0, size)
	b = append(b, frameMagic, frameVersion)
	b = binary.AppendVarint(b, unixNano)
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = append(b, r...)
	}
	return b
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
