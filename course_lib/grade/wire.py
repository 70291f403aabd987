"""Plain data between the judge and a worker: a small, strict format that carries values,
never code.

What the student's process sends back is *data about* its results, and the judge decodes
it into exactly these types, whatever the bytes claim:

============  ===============================================================
Python        on the wire (JSON header; raw bytes in numbered buffers)
============  ===============================================================
None, bool, int, float, str          themselves (NaN and infinities as JSON's NaN/Infinity)
list                                 a JSON list
tuple                                ``{"$tuple": [...]}``
dict                                 ``{"$dict": [[key, value], ...]}`` (keys: plain scalars or tuples)
complex                              ``{"$complex": [re, im]}``
bytes                                ``{"$bytes": i}``
torch.Tensor                         ``{"$tensor": i, "dtype": "float32", "shape": [..], "grad": bool}``
numpy.ndarray                        ``{"$ndarray": i, "dtype": "<f4", "shape": [..]}`` (numbers only)
anything else                        ``{"$opaque": "TypeName"}`` -> :class:`Opaque`
============  ===============================================================

A tensor's bytes are its elements in C order (``torch.frombuffer``), numpy's likewise
(``numpy.frombuffer``): no pickle anywhere, so decoding runs no code. Requests from the
judge may also hold ``{"$spec": id, "kind": ..., "params": ...}`` (see
:mod:`course_lib.grade.fixtures`); responses may not.

A frame is ``magic, u32 header length, u32 buffer count, u64 length per buffer, header,
buffers`` (little-endian). The magic is 16 random bytes the judge gives each worker: bytes
that do not start with it (a student's code writing junk to every file descriptor) are
skipped, and reading resumes at the next magic. :class:`FrameReader` reassembles frames
from a byte stream and refuses oversized or malformed ones with :class:`WireError`.

torch and numpy are imported only when a value needs them, so that grading exercises
without tensors does not pay for them.
"""
from __future__ import annotations

import json
import math
import struct
import sys
from dataclasses import dataclass

MAX_HEADER = 16 * 2**20          # bytes of JSON per frame
MAX_FRAME = 320 * 2**20          # bytes per frame, buffers included (answers hold <= 256 MB of arrays)
MAX_BUFFERS = 100_000
MAX_DEPTH = 64                   # nesting of lists/tuples/dicts

TENSOR_DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128",
                 "int8", "int16", "int32", "int64", "uint8", "bool")
NDARRAY_KINDS = "biufc"          # numpy dtype kinds that are plain numbers


class WireError(ValueError):
    """Bytes that are not a well-formed frame of plain data."""


@dataclass(frozen=True)
class Opaque:
    """Stands for a value that is not plain data (an object of the student's own class,
    a generator, a module...): only its type's name crosses."""
    type: str

    def __repr__(self) -> str:
        return f"<a {self.type} object>"


def type_name(value) -> str:
    """The name to show for a value's type: an :class:`Opaque`'s own, else ``type(value)``'s."""
    return value.type if isinstance(value, Opaque) else type(value).__name__


# --- encoding ---------------------------------------------------------------------------

def _tensor_bytes(t):
    """The tensor's elements in C order, as a buffer (a view where possible: pack() copies
    once, into the frame)."""
    import torch

    flat = t.detach().cpu().contiguous().reshape(-1)
    if flat.numel() == 0:
        return b""
    return memoryview(flat.view(torch.uint8).numpy())


def encode(value, specs: bool = False) -> tuple[object, list[bytes]]:
    """``(header, buffers)`` for a value made of the types in the module docstring.
    Anything else is sent as :class:`Opaque`. ``specs`` allows fixture specs (requests)."""
    buffers: list[bytes] = []

    def add(data: bytes) -> int:
        buffers.append(data)
        return len(buffers) - 1

    def enc(v, depth: int):
        if depth > MAX_DEPTH:
            raise WireError(f"the value is nested more than {MAX_DEPTH} levels deep")
        t = type(v)
        if v is None or t in (bool, int, str):
            return v
        if t is float:
            return v
        if t is list:
            return [enc(x, depth + 1) for x in v]
        if t is tuple:
            return {"$tuple": [enc(x, depth + 1) for x in v]}
        if t is dict:
            return {"$dict": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in v.items()]}
        if t is complex:
            return {"$complex": [v.real, v.imag]}
        if t is bytes:
            return {"$bytes": add(v)}
        if t is Opaque:
            return {"$opaque": v.type}
        if specs and getattr(v, "_is_fixture_spec", False):
            return {"$spec": v.id, "kind": v.kind, "params": enc(dict(v.params), depth + 1)}
        torch = sys.modules.get("torch")
        if torch is not None and t is torch.Tensor:
            dtype = str(v.dtype).replace("torch.", "")
            if dtype not in TENSOR_DTYPES or v.layout != torch.strided:
                return {"$opaque": f"Tensor of dtype {dtype}"}
            return {"$tensor": add(_tensor_bytes(v)), "dtype": dtype, "shape": list(v.shape),
                    "grad": bool(v.requires_grad)}
        np = sys.modules.get("numpy")
        if np is not None and t is np.ndarray:
            if v.dtype.kind not in NDARRAY_KINDS:
                return {"$opaque": f"ndarray of {v.dtype}"}
            return {"$ndarray": add(memoryview(np.ascontiguousarray(v)).cast("B")), "dtype": v.dtype.str,
                    "shape": list(v.shape)}
        return {"$opaque": t.__name__}

    return enc(value, 0), buffers


def pack(value, specs: bool = False, magic: bytes = b"") -> bytes:
    """One frame holding ``value``."""
    header, buffers = encode(value, specs)
    text = json.dumps(header, ensure_ascii=True, separators=(",", ":")).encode()
    lengths = b"".join(struct.pack("<Q", memoryview(b).nbytes) for b in buffers)
    return b"".join([magic, struct.pack("<II", len(text), len(buffers)), lengths, text, *buffers])


# --- decoding ---------------------------------------------------------------------------

_MARKERS = {"$tuple": {"$tuple"}, "$dict": {"$dict"}, "$complex": {"$complex"},
            "$bytes": {"$bytes"}, "$opaque": {"$opaque"},
            "$tensor": {"$tensor", "dtype", "shape", "grad"},
            "$ndarray": {"$ndarray", "dtype", "shape"},
            "$spec": {"$spec", "kind", "params"}}


def _shape(shape) -> tuple[int, ...]:
    if type(shape) is not list or len(shape) > 32 or \
            not all(type(n) is int and 0 <= n < 2**40 for n in shape):
        raise WireError("a tensor's shape is not a list of sizes")
    return tuple(shape)


def _buffer(buffers: list, index):
    if type(index) is not int or not 0 <= index < len(buffers):
        raise WireError("a reference to a missing buffer")
    return buffers[index]


def _decode_tensor(node: dict, buffers):
    import torch

    dtype = node["dtype"]
    if dtype not in TENSOR_DTYPES:
        raise WireError(f"tensor dtype {dtype!r} is not allowed")
    shape, data = _shape(node["shape"]), _buffer(buffers, node["$tensor"])
    torch_dtype = getattr(torch, dtype)
    size = torch.empty((), dtype=torch_dtype).element_size()
    count = math.prod(shape)
    if len(data) != count * size:
        raise WireError(f"a tensor of shape {list(shape)} and dtype {dtype} needs "
                        f"{count * size} bytes, got {len(data)}")
    # bytearray(): torch wants a writable buffer, and the tensor must own its memory.
    if count == 0:
        out = torch.empty(shape, dtype=torch_dtype)
    else:
        out = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(torch_dtype).reshape(shape)
    if type(node["grad"]) is not bool:
        raise WireError("a tensor's grad flag is not true/false")
    if node["grad"] and (out.dtype.is_floating_point or out.is_complex()):
        out.requires_grad_(True)  # "it required grad over there": a flag, not a graph
    return out


def _decode_ndarray(node: dict, buffers):
    import numpy as np

    try:
        dtype = np.dtype(node["dtype"]) if type(node["dtype"]) is str else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in NDARRAY_KINDS or dtype.hasobject:
        raise WireError(f"array dtype {node['dtype']!r} is not allowed")
    shape, data = _shape(node["shape"]), _buffer(buffers, node["$ndarray"])
    if len(data) != math.prod(shape) * dtype.itemsize:
        raise WireError("an array's bytes do not match its shape")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _hashable(key):
    if key is None or type(key) in (bool, int, float, str, tuple, complex, Opaque):
        return key
    raise WireError(f"a dictionary key of type {type(key).__name__} is not allowed")


def decode(header, buffers: list[bytes], specs=None):
    """The value described by ``header`` (see :func:`encode`). ``specs`` — a function
    ``(id, kind, params) -> object`` — is required for requests holding fixture specs;
    without it a spec is a :class:`WireError`."""

    def dec(node, depth: int):
        if depth > MAX_DEPTH:
            raise WireError(f"the value is nested more than {MAX_DEPTH} levels deep")
        t = type(node)
        if node is None or t in (bool, int, str, float):
            return node
        if t is list:
            return [dec(x, depth + 1) for x in node]
        if t is not dict:
            raise WireError(f"unexpected JSON {t.__name__}")
        kinds = [k for k in node if k in _MARKERS]
        if len(kinds) != 1 or set(node) != _MARKERS[kinds[0]]:
            raise WireError(f"an object with keys {sorted(node)[:5]} is not plain data")
        kind = kinds[0]
        if kind == "$tuple":
            if type(node[kind]) is not list:
                raise WireError("a tuple that is not a list")
            return tuple(dec(x, depth + 1) for x in node[kind])
        if kind == "$dict":
            items = node[kind]
            if type(items) is not list or not all(type(p) is list and len(p) == 2 for p in items):
                raise WireError("a dictionary that is not a list of pairs")
            return {_hashable(dec(k, depth + 1)): dec(v, depth + 1) for k, v in items}
        if kind == "$complex":
            parts = node[kind]
            if type(parts) is not list or len(parts) != 2 or not all(type(p) in (int, float) for p in parts):
                raise WireError("a complex number that is not [re, im]")
            return complex(*parts)
        if kind == "$bytes":
            return bytes(_buffer(buffers, node[kind]))  # a copy, not a view of the frame
        if kind == "$opaque":
            if type(node[kind]) is not str:
                raise WireError("an opaque value without a type name")
            return Opaque(node[kind][:200])
        if kind == "$tensor":
            return _decode_tensor(node, buffers)
        if kind == "$ndarray":
            return _decode_ndarray(node, buffers)
        if specs is None:
            raise WireError("a fixture spec where only data is allowed")
        if type(node["$spec"]) is not int or type(node["kind"]) is not str:
            raise WireError("a malformed fixture spec")
        params = dec(node["params"], depth + 1)
        if type(params) is not dict:
            raise WireError("a fixture spec whose params are not a dictionary")
        return specs(node["$spec"], node["kind"], params)

    try:
        return dec(header, 0)
    except RecursionError:
        raise WireError("the value is nested too deeply") from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, WireError):
            raise
        raise WireError(f"malformed data ({type(exc).__name__}: {exc})") from None


def unpack(frame: tuple[bytes, list[bytes]], specs=None):
    """The value of a frame as returned by :meth:`FrameReader.frames`."""
    text, buffers = frame
    try:
        header = json.loads(text)
    except RecursionError:
        raise WireError("the data is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"the header is not JSON ({exc})") from None
    return decode(header, buffers, specs)


class FrameReader:
    """Reassembles frames from a byte stream: ``feed(data)``, then ``frames()``.

    With a ``magic``, anything before it is junk to skip (counted in ``junk``), and a frame
    whose sizes make no sense is skipped too; without one, such bytes are a WireError."""

    def __init__(self, max_frame: int = MAX_FRAME, magic: bytes = b""):
        self.data = bytearray()
        self.max_frame = max_frame
        self.magic = magic
        self.junk = 0
        self.ready: list[tuple[bytes, list[bytes]]] = []
        self.waiting: list[bytes] = []   # chunks of a large frame, joined once it is whole
        self.waiting_size = 0
        self.need = 0                    # bytes the frame being read needs in all

    def _skip_to_magic(self) -> bool:
        """Drop bytes up to the next magic; False if there is none yet."""
        at = self.data.find(self.magic)
        if at < 0:
            keep = len(self.magic) - 1   # the start of a magic cut in two
            self.junk += max(0, len(self.data) - keep)
            del self.data[:max(0, len(self.data) - keep)]
            return False
        self.junk += at
        del self.data[:at]
        return True

    def feed(self, data: bytes) -> None:
        if self.need:
            self.waiting.append(bytes(data))
            self.waiting_size += len(data)
            if len(self.data) + self.waiting_size < self.need:
                return
            self.data += b"".join(self.waiting)
            self.waiting, self.waiting_size, self.need = [], 0, 0
        else:
            self.data += data
        m = len(self.magic)
        while True:
            if m and not self._skip_to_magic():
                return
            if len(self.data) < m + 8:
                return
            header_len, count = struct.unpack_from("<II", self.data, m)
            total = None
            if header_len <= MAX_HEADER and count <= MAX_BUFFERS:
                start = m + 8 + 8 * count
                if len(self.data) < start:
                    return
                lengths = struct.unpack_from(f"<{count}Q", self.data, m + 8)
                total = start + header_len + sum(lengths)
            if total is None or total > self.max_frame:
                if m:   # not a real frame after all: look for the next magic
                    del self.data[:m]
                    self.junk += m
                    continue
                if total is None:
                    raise WireError(f"a frame announces a {header_len}-byte header and {count} buffers")
                raise WireError(f"a frame of {total} bytes is larger than the limit "
                                f"({self.max_frame} bytes)")
            if len(self.data) < total:
                self.need = total   # a large frame: collect its chunks without copying
                return
            frame = bytes(self.data[:total]) if total < len(self.data) else bytes(self.data)
            view = memoryview(frame)
            text = frame[start:start + header_len]
            buffers, offset = [], start + header_len
            for n in lengths:
                buffers.append(view[offset:offset + n])
                offset += n
            del self.data[:total]
            self.ready.append((text, buffers))

    def frames(self) -> list[tuple[bytes, list[bytes]]]:
        out, self.ready = self.ready, []
        return out


def take_json_lines(buffer: bytearray) -> list[dict]:
    """The complete JSON-object lines at the start of ``buffer``, removed from it (the
    zygote's control messages; anything that is not a JSON object is dropped)."""
    found = []
    while b"\n" in buffer:
        line, _, rest = bytes(buffer).partition(b"\n")
        buffer[:] = rest
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(message, dict):
            found.append(message)
    return found


class BlockingChannel:
    """Frames over a blocking socket (the worker's side of the conversation)."""

    def __init__(self, sock, magic: bytes = b""):
        self.sock = sock
        self.magic = magic          # put before each frame sent
        self.reader = FrameReader()

    def receive(self, specs=None):
        """The next value, or None at end of stream."""
        while True:
            frames = self.reader.frames()
            if frames:
                self.reader.ready = frames[1:] + self.reader.ready
                return unpack(frames[0], specs)
            data = self.sock.recv(1 << 20)
            if not data:
                return None
            self.reader.feed(data)

    def send(self, value, specs: bool = False) -> None:
        self.sock.sendall(pack(value, specs, self.magic))
