"""Read and write MindSpore .ckpt files without MindSpore.

A .ckpt is a protobuf `Checkpoint` message (MindSpore's mindspore/ccsrc/utils/checkpoint.proto):

    message Checkpoint { message Value { required string tag = 1;
                                         oneof value { TensorProto tensor = 2; MapTensorProto maptensor = 3; } }
                         repeated Value value = 1; }
    message TensorProto { repeated int64 dims = 1; required string tensor_type = 2; required bytes tensor_content = 3; }
    message MapTensorProto { repeated TensorProto tensor = 1; }

(MindSpore 1.x had `required TensorProto tensor = 2` without the oneof: the same bytes on the wire.)
MindSpore writes one serialized Checkpoint per tensor slice and concatenates them (protobuf merges
repeated fields), splitting tensors over 512 MB into several Values with the same tag; with
crc_check=True it appends b"crc_num" + a 10-byte big-endian CRC32 of everything before.

We parse with the `protobuf` package (already installed: tensorboard depends on it) and a descriptor
built at run time from the schema above, rather than a hand-written wire-format reader: protobuf's
parser is maintained, fast (upb, C) and validates required fields and wire types for us; the
descriptor is 20 lines and needs no protoc step or generated file.
"""
from __future__ import annotations

import binascii
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from ...errors import MindSporeCheckpointError


CRC_MARK = b"crc_num"
# first 4 bytes (little-endian uint32) of a file MindSpore encrypted with enc_key (utils/crypto.h)
CIPHER_MAGIC = {0x7F3A5ED8: "AES-GCM", 0x7F3A5ED9: "AES-CBC", 0x7F3A5EDA: "SM4-CBC"}

# tensor_type strings. MindSpore 2.x writes "UInt8"...; 1.x wrote "Uint8"...: both are read.
DTYPES: dict[str, torch.dtype] = {
    "Float16": torch.float16, "Float32": torch.float32, "Float64": torch.float64, "BFloat16": torch.bfloat16,
    "Int8": torch.int8, "Int16": torch.int16, "Int32": torch.int32, "Int64": torch.int64,
    "UInt8": torch.uint8, "UInt16": torch.uint16, "UInt32": torch.uint32, "UInt64": torch.uint64,
    "Uint8": torch.uint8, "Uint16": torch.uint16, "Uint32": torch.uint32, "Uint64": torch.uint64,
    "Bool": torch.bool,
}
# what we write: MindSpore 2.x spelling (also what 1.x reads for every type but unsigned ints)
WRITE_NAMES = {torch.float16: "Float16", torch.float32: "Float32", torch.float64: "Float64",
               torch.bfloat16: "BFloat16", torch.int8: "Int8", torch.int16: "Int16", torch.int32: "Int32",
               torch.int64: "Int64", torch.uint8: "UInt8", torch.uint16: "UInt16", torch.uint32: "UInt32",
               torch.uint64: "UInt64", torch.bool: "Bool"}
UNSUPPORTED = {"Int4": "a 4-bit quantised tensor (qint4x2, two values per byte)"}


_CLASSES = None


def _messages():
    """(Checkpoint, TensorProto) message classes from a descriptor built at run time, made once."""
    global _CLASSES
    if _CLASSES is None:
        from google.protobuf import descriptor_pb2, descriptor_pool
        F = descriptor_pb2.FieldDescriptorProto
        fd = descriptor_pb2.FileDescriptorProto(name="transferlearn_mindspore_checkpoint.proto",
                                                package="transferlearn_ms", syntax="proto2")

        def add(msg, name, number, label, ftype, type_name=None, oneof=None):
            f = msg.field.add(name=name, number=number, label=label, type=ftype)
            if type_name:
                f.type_name = type_name
            if oneof is not None:
                f.oneof_index = oneof

        tp = fd.message_type.add(name="TensorProto")
        add(tp, "dims", 1, F.LABEL_REPEATED, F.TYPE_INT64)
        add(tp, "tensor_type", 2, F.LABEL_REQUIRED, F.TYPE_STRING)
        add(tp, "tensor_content", 3, F.LABEL_REQUIRED, F.TYPE_BYTES)
        mp = fd.message_type.add(name="MapTensorProto")
        add(mp, "tensor", 1, F.LABEL_REPEATED, F.TYPE_MESSAGE, ".transferlearn_ms.TensorProto")
        ck = fd.message_type.add(name="Checkpoint")
        val = ck.nested_type.add(name="Value")
        val.oneof_decl.add(name="value")
        add(val, "tag", 1, F.LABEL_REQUIRED, F.TYPE_STRING)
        add(val, "tensor", 2, F.LABEL_OPTIONAL, F.TYPE_MESSAGE, ".transferlearn_ms.TensorProto", oneof=0)
        add(val, "maptensor", 3, F.LABEL_OPTIONAL, F.TYPE_MESSAGE, ".transferlearn_ms.MapTensorProto", oneof=0)
        add(ck, "value", 1, F.LABEL_REPEATED, F.TYPE_MESSAGE, ".transferlearn_ms.Checkpoint.Value")
        pool = descriptor_pool.DescriptorPool()  # private: never clashes with MindSpore's own checkpoint_pb2
        pool.Add(fd)
        try:
            from google.protobuf.message_factory import GetMessageClass  # protobuf >= 4.21
        except ImportError:  # pragma: no cover - older protobuf
            from google.protobuf.message_factory import MessageFactory
            GetMessageClass = MessageFactory(pool).GetPrototype
        _CLASSES = (GetMessageClass(pool.FindMessageTypeByName("transferlearn_ms.Checkpoint")),
                    GetMessageClass(pool.FindMessageTypeByName("transferlearn_ms.TensorProto")))
    return _CLASSES


def _sniff(path: Path, head: bytes) -> str | None:
    """Name a file that is not a plain .ckpt, from its first bytes."""
    if len(head) >= 4 and int.from_bytes(head[:4], "little") in CIPHER_MAGIC:
        mode = CIPHER_MAGIC[int.from_bytes(head[:4], "little")]
        return (f"{path} is an encrypted MindSpore checkpoint ({mode}, saved with enc_key). Decrypt it with "
                f"MindSpore: save_checkpoint(load_checkpoint('{path.name}', dec_key=KEY, dec_mode='{mode}'), "
                f"'plain.ckpt'), then use plain.ckpt")
    if head[:2] == b"PK":
        return f"{path} is a zip file (a PyTorch .pt/.pth?), not a MindSpore .ckpt"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return (f"{path} is a safetensors file (MindSpore format='safetensors'?), not a protobuf .ckpt; "
                f"load it with the safetensors package, or save it with MindSpore's default format='ckpt'")
    if head[:1] == b"\x80":
        return f"{path} is a Python pickle (a legacy PyTorch file?), not a MindSpore .ckpt"
    return None


def read_ckpt(path: str | os.PathLike) -> "OrderedDict[str, torch.Tensor | str]":
    """name -> tensor (torch, CPU, the file's dtype; shape () for scalars) or str, in file order."""
    path = Path(path)
    if not path.is_file():
        raise MindSporeCheckpointError(f"{path}: no such file")
    data = path.read_bytes()
    what = _sniff(path, data[:16])
    if what:
        raise MindSporeCheckpointError(what)
    if len(data) >= 17 and data[-17:-10] == CRC_MARK:
        stored, data = int.from_bytes(data[-10:], "big"), data[:-17]
        if binascii.crc32(data) != stored:
            raise MindSporeCheckpointError(f"{path}: CRC32 check failed (stored {stored}, computed "
                                           f"{binascii.crc32(data)}): the file is damaged or truncated; "
                                           f"copy it again")
    Checkpoint, _ = _messages()
    ck = Checkpoint()
    try:
        ck.ParseFromString(data)
    except Exception as e:  # google.protobuf.message.DecodeError, or a missing required field
        raise MindSporeCheckpointError(f"{path} is not a readable MindSpore .ckpt ({e}): damaged, truncated, "
                                       f"or another format (a MindIR or .om model is not a checkpoint)") from e
    if not ck.value:
        raise MindSporeCheckpointError(f"{path}: no tensors in it (an empty or non-checkpoint file)")
    out: OrderedDict = OrderedDict()
    i, values = 0, ck.value
    while i < len(values):
        v = values[i]
        if v.WhichOneof("value") != "tensor":
            raise MindSporeCheckpointError(f"{path}: entry {v.tag!r} is a MapParameter (an embedding hash "
                                           f"table), which has no PyTorch equivalent; leave it out when saving")
        parts, j = [v.tensor.tensor_content], i + 1
        while j < len(values) and values[j].tag == v.tag:  # one tensor split over several Values
            parts.append(values[j].tensor.tensor_content)
            j += 1
        if v.tag in out:
            raise MindSporeCheckpointError(f"{path}: tag {v.tag!r} appears twice, apart; the file is damaged")
        out[v.tag] = _decode(path, v.tag, list(v.tensor.dims), v.tensor.tensor_type, b"".join(parts))
        i = j
    return out


def _decode(path: Path, tag: str, dims: list[int], ttype: str, content: bytes):
    if ttype == "str":  # append_dict strings: numpy unicode (UTF-32), dims [0]
        return str(np.frombuffer(content, f"<U{max(len(content) // 4, 1)}")[0]) if content else ""
    if ttype not in DTYPES:
        kind = UNSUPPORTED.get(ttype, "a data type this reader does not know")
        raise MindSporeCheckpointError(f"{path}: entry {tag!r} has tensor_type {ttype!r}, {kind}; convert it "
                                       f"to Float32 in MindSpore first (e.g. dequantise), then save again")
    dtype = DTYPES[ttype]
    item = torch.empty((), dtype=dtype).element_size()
    n = int(np.prod(dims)) if dims else 1
    if dims == [0] and len(content) == item:  # how some versions store a scalar
        dims, n = [], 1
    if len(content) != n * item:
        raise MindSporeCheckpointError(f"{path}: entry {tag!r} should hold {n} x {ttype} ({n * item} bytes) "
                                       f"for dims {dims}, but has {len(content)} bytes; the file is damaged")
    raw = torch.frombuffer(bytearray(content), dtype=torch.uint8) if content else torch.empty(0, dtype=torch.uint8)
    return raw.view(dtype).reshape(dims).clone()  # little-endian, as MindSpore writes on every platform it runs on


def write_ckpt(tensors: dict, path: str | os.PathLike, crc: bool = False) -> Path:
    """Write name -> tensor (or str) as MindSpore's save_checkpoint does; atomic (tmp file + rename)."""
    Checkpoint, _ = _messages()
    path = Path(path)
    chunks = []
    for name, t in tensors.items():
        ck = Checkpoint()
        v = ck.value.add()
        v.tag = name
        if isinstance(t, str):
            arr = np.array(t)
            v.tensor.dims.append(0)
            v.tensor.tensor_type = "str"
            v.tensor.tensor_content = arr.astype(f"<U{max(len(t), 1)}").tobytes()
        else:
            t = torch.as_tensor(t).detach().cpu().contiguous()
            if t.dtype not in WRITE_NAMES:
                raise MindSporeCheckpointError(f"cannot write {name!r} to {path}: dtype {t.dtype} has no "
                                               f"MindSpore checkpoint type")
            v.tensor.dims.extend(t.shape)
            v.tensor.tensor_type = WRITE_NAMES[t.dtype]
            v.tensor.tensor_content = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        chunks.append(ck.SerializeToString())
    data = b"".join(chunks)
    if crc:
        data += CRC_MARK + binascii.crc32(data).to_bytes(10, "big")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
