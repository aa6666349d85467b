package vision

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// OpenCV's ONNX importer throws C++ exceptions (which abort the process) on
// a malformed protobuf, an unknown operator or a tensor whose data does not
// match its shape. checkONNX walks the protobuf framing in Go first, so a
// truncated, corrupt or foreign file is refused with ErrBadModel instead.

// allowedOps are the ONNX operators a plate recogniser may use; all of them
// load in OpenCV 4.6 DNN.
var allowedOps = map[string]bool{
	"Conv": true, "Relu": true, "MaxPool": true, "BatchNormalization": true,
	"Add": true, "Mul": true, "Transpose": true, "Reshape": true, "Softmax": true,
	"LSTM": true, "Squeeze": true, "Unsqueeze": true, "Concat": true, "Constant": true,
	"Identity": true, "Flatten": true, "Gemm": true, "MatMul": true, "Sigmoid": true,
	"Tanh": true, "AveragePool": true, "Dropout": true, "LeakyRelu": true,
}

var errProto = errors.New("malformed protobuf")

type field struct {
	num  int
	wire int
	v    uint64 // varint / fixed value
	b    []byte // length-delimited payload
}

// fields splits one protobuf message into its fields, checking framing.
func fields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return nil, errProto
		}
		b = b[n:]
		f := field{num: int(key >> 3), wire: int(key & 7)}
		if f.num == 0 {
			return nil, errProto
		}
		switch f.wire {
		case 0:
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return nil, errProto
			}
			f.v, b = v, b[n:]
		case 1:
			if len(b) < 8 {
				return nil, errProto
			}
			f.v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return nil, errProto
			}
			f.b, b = b[n:n+int(l)], b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return nil, errProto
			}
			f.v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		default:
			return nil, errProto
		}
		out = append(out, f)
	}
	return out, nil
}

// onnxInfo is what checkONNX learns about a model.
type onnxInfo struct {
	opset      int64
	inputShape []int64
}

func checkONNX(model []byte) (onnxInfo, error) {
	var info onnxInfo
	top, err := fields(model)
	if err != nil {
		return info, fmt.Errorf("%w: not an onnx file: %v", ErrBadModel, err)
	}
	var graph []byte
	var haveIR bool
	for _, f := range top {
		switch {
		case f.num == 1 && f.wire == 0:
			haveIR = true
		case f.num == 7 && f.wire == 2:
			graph = f.b
		case f.num == 8 && f.wire == 2:
			ofs, err := fields(f.b)
			if err != nil {
				return info, fmt.Errorf("%w: opset: %v", ErrBadModel, err)
			}
			for _, o := range ofs {
				if o.num == 2 && o.wire == 0 {
					info.opset = int64(o.v)
				}
			}
		}
	}
	if !haveIR || graph == nil {
		return info, fmt.Errorf("%w: no ir_version or graph", ErrBadModel)
	}
	if info.opset < 7 || info.opset > 13 {
		return info, fmt.Errorf("%w: opset %d, want 7-13 for opencv 4.6", ErrBadModel, info.opset)
	}
	gf, err := fields(graph)
	if err != nil {
		return info, fmt.Errorf("%w: graph: %v", ErrBadModel, err)
	}
	nodes, inputs := 0, 0
	for _, f := range gf {
		if f.wire != 2 {
			continue
		}
		switch f.num {
		case 1: // node
			if err := checkNode(f.b); err != nil {
				return info, err
			}
			nodes++
		case 5: // initializer
			if err := checkTensor(f.b); err != nil {
				return info, err
			}
		case 11: // input
			if inputs == 0 {
				info.inputShape, err = valueShape(f.b)
				if err != nil {
					return info, fmt.Errorf("%w: input: %v", ErrBadModel, err)
				}
			}
			inputs++
		}
	}
	if nodes == 0 || inputs == 0 {
		return info, fmt.Errorf("%w: empty graph", ErrBadModel)
	}
	return info, nil
}

func checkNode(b []byte) error {
	nf, err := fields(b)
	if err != nil {
		return fmt.Errorf("%w: node: %v", ErrBadModel, err)
	}
	for _, f := range nf {
		if f.num == 4 && f.wire == 2 {
			if !allowedOps[string(f.b)] {
				return fmt.Errorf("%w: operator %q not supported", ErrBadModel, f.b)
			}
			return nil
		}
	}
	return fmt.Errorf("%w: node without op_type", ErrBadModel)
}

// checkTensor checks that a float initializer's raw data matches its dims.
func checkTensor(b []byte) error {
	tf, err := fields(b)
	if err != nil {
		return fmt.Errorf("%w: tensor: %v", ErrBadModel, err)
	}
	n, elem := int64(1), int64(0)
	var raw []byte
	hasRaw := false
	for _, f := range tf {
		switch {
		case f.num == 1 && f.wire == 0:
			if int64(f.v) < 0 || f.v > 1<<32 {
				return fmt.Errorf("%w: tensor dimension %d", ErrBadModel, f.v)
			}
			n *= int64(f.v)
			if n > 1<<32 {
				return fmt.Errorf("%w: tensor too large", ErrBadModel)
			}
		case f.num == 1 && f.wire == 2: // packed dims
			for p := f.b; len(p) > 0; {
				v, k := binary.Uvarint(p)
				if k <= 0 || v > 1<<32 {
					return fmt.Errorf("%w: tensor dims", ErrBadModel)
				}
				n *= int64(v)
				if n > 1<<32 {
					return fmt.Errorf("%w: tensor too large", ErrBadModel)
				}
				p = p[k:]
			}
		case f.num == 2 && f.wire == 0:
			switch f.v {
			case 1, 6: // FLOAT, INT32
				elem = 4
			case 7, 11: // INT64, DOUBLE
				elem = 8
			}
		case f.num == 9 && f.wire == 2:
			raw, hasRaw = f.b, true
		}
	}
	if hasRaw && elem > 0 && int64(len(raw)) != n*elem {
		return fmt.Errorf("%w: tensor has %d bytes, shape wants %d", ErrBadModel, len(raw), n*elem)
	}
	return nil
}

// valueShape reads the dims of a ValueInfoProto's tensor type (-1 for a
// symbolic dimension).
func valueShape(b []byte) ([]int64, error) {
	path := []int{2, 1, 2} // type -> tensor_type -> shape
	for _, num := range path {
		fs, err := fields(b)
		if err != nil {
			return nil, err
		}
		var next []byte
		for _, f := range fs {
			if f.num == num && f.wire == 2 {
				next = f.b
			}
		}
		if next == nil {
			return nil, errors.New("no shape")
		}
		b = next
	}
	fs, err := fields(b)
	if err != nil {
		return nil, err
	}
	var dims []int64
	for _, f := range fs {
		if f.num != 1 || f.wire != 2 {
			continue
		}
		df, err := fields(f.b)
		if err != nil {
			return nil, err
		}
		d := int64(-1)
		for _, x := range df {
			if x.num == 1 && x.wire == 0 {
				d = int64(x.v)
			}
		}
		dims = append(dims, d)
	}
	return dims, nil
}
