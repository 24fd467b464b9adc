#!/usr/bin/env python3
"""Minimal self-contained GGUF v3 writer and reader (no third-party gguf package).

Only what the demo models need: scalar / string / array metadata, and tensors
of type F32, F16 and Q8_0.

GGUF layout (all little-endian):
    magic "GGUF", u32 version (3), u64 n_tensors, u64 n_kv
    n_kv x (string key, u32 value_type, value)
    n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset)
    padding to `general.alignment` (default 32)
    tensor data; each tensor's offset (relative to the start of the data block)
    is a multiple of the alignment.
Strings are u64 length + UTF-8 bytes.  ne[0] is the innermost (row) length, so a
numpy array of shape (a, b, c) is written with ne = [c, b, a].

Usage as a tool:  /usr/bin/python3 tools/gguf_writer.py FILE.gguf   (dumps header)
"""
import struct
import sys

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
ALIGNMENT = 32

# metadata value types
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, \
    T_STRING, T_ARRAY, T_UINT64, T_INT64, T_FLOAT64 = range(13)

_SCALAR_FMT = {
    T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h",
    T_UINT32: "<I", T_INT32: "<i", T_FLOAT32: "<f", T_BOOL: "<?",
    T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d",
}
_NP_FOR_TYPE = {
    T_UINT8: "<u1", T_INT8: "<i1", T_UINT16: "<u2", T_INT16: "<i2",
    T_UINT32: "<u4", T_INT32: "<i4", T_FLOAT32: "<f4", T_BOOL: "<u1",
    T_UINT64: "<u8", T_INT64: "<i8", T_FLOAT64: "<f8",
}

# ggml tensor types
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
GGML_TYPE_NAME = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1",
                  8: "Q8_0", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K",
                  14: "Q6_K", 20: "IQ4_NL", 23: "IQ4_XS", 30: "BF16", 39: "MXFP4"}
QK8_0 = 32

# general.file_type values (llama_ftype)
FTYPE_ALL_F32, FTYPE_MOSTLY_F16, FTYPE_MOSTLY_Q8_0 = 0, 1, 7


# ----------------------------------------------------------------------------
# quantisation helpers

def quantize_q8_0(x):
    """x: float array whose last dim is a multiple of 32 -> raw Q8_0 bytes.

    Block = f16 scale d (= max|x|/127) followed by 32 int8 q = round(x/d)."""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, QK8_0)
    amax = np.abs(x).max(axis=1, keepdims=True)
    d = amax / 127.0
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(d > 0, 1.0 / d, 0.0)
    v = x * inv.astype(np.float32)
    q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).clip(-127, 127).astype(np.int8)  # roundf
    blocks = np.empty(x.shape[0], dtype=[("d", "<f2"), ("qs", "i1", (QK8_0,))])
    blocks["d"] = d[:, 0].astype(np.float16)
    blocks["qs"] = q
    return blocks.tobytes()


def dequantize_q8_0(raw, n):
    blocks = np.frombuffer(raw, dtype=[("d", "<f2"), ("qs", "i1", (QK8_0,))],
                           count=n // QK8_0)
    return (blocks["d"].astype(np.float32)[:, None] *
            blocks["qs"].astype(np.float32)).reshape(-1)


def tensor_nbytes(ggml_type, n):
    if ggml_type == GGML_F32:
        return 4 * n
    if ggml_type == GGML_F16:
        return 2 * n
    if ggml_type == GGML_Q8_0:
        return n // QK8_0 * 34
    raise ValueError(f"unsupported ggml type {ggml_type}")


# ----------------------------------------------------------------------------
# writer

class GGUFWriter:
    def __init__(self, path, alignment=ALIGNMENT):
        self.path = path
        self.alignment = alignment
        self.kv = []        # (key, type, value, elem_type)
        self.tensors = []   # (name, ne list, ggml_type, raw bytes)

    # metadata ------------------------------------------------------------
    def add(self, key, vtype, value, elem_type=None):
        self.kv.append((key, vtype, value, elem_type))

    def add_string(self, key, v): self.add(key, T_STRING, v)
    def add_uint32(self, key, v): self.add(key, T_UINT32, int(v))
    def add_int32(self, key, v): self.add(key, T_INT32, int(v))
    def add_float32(self, key, v): self.add(key, T_FLOAT32, float(v))
    def add_bool(self, key, v): self.add(key, T_BOOL, bool(v))
    def add_array(self, key, elem_type, values): self.add(key, T_ARRAY, list(values), elem_type)

    # tensors -------------------------------------------------------------
    def add_tensor(self, name, array, ggml_type):
        """array: numpy array in row-major (PyTorch) shape; ne = reversed shape."""
        a = np.ascontiguousarray(array, dtype=np.float32)
        ne = list(reversed(a.shape))
        if ggml_type == GGML_F32:
            raw = a.astype("<f4").tobytes()
        elif ggml_type == GGML_F16:
            raw = a.astype("<f2").tobytes()
        elif ggml_type == GGML_Q8_0:
            assert ne[0] % QK8_0 == 0, (name, ne)
            raw = quantize_q8_0(a)
        else:
            raise ValueError(ggml_type)
        self.tensors.append((name, ne, ggml_type, raw))

    # serialisation -------------------------------------------------------
    @staticmethod
    def _str(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def _value(self, vtype, value, elem_type):
        if vtype == T_STRING:
            return self._str(value)
        if vtype == T_ARRAY:
            out = [struct.pack("<IQ", elem_type, len(value))]
            if elem_type == T_STRING:
                out.extend(self._str(v) for v in value)
            else:
                out.append(np.asarray(value, dtype=_NP_FOR_TYPE[elem_type]).tobytes())
            return b"".join(out)
        return struct.pack(_SCALAR_FMT[vtype], value)

    def write(self):
        pad = lambda n: (-n) % self.alignment
        head = [GGUF_MAGIC, struct.pack("<IQQ", GGUF_VERSION, len(self.tensors), len(self.kv))]
        for key, vtype, value, elem_type in self.kv:
            head.append(self._str(key) + struct.pack("<I", vtype) +
                        self._value(vtype, value, elem_type))
        offset = 0
        for name, ne, gtype, raw in self.tensors:
            head.append(self._str(name) + struct.pack("<I", len(ne)) +
                        struct.pack(f"<{len(ne)}Q", *ne) + struct.pack("<IQ", gtype, offset))
            offset += len(raw) + pad(len(raw))
        header = b"".join(head)
        with open(self.path, "wb") as f:
            f.write(header)
            f.write(b"\0" * pad(len(header)))
            for name, ne, gtype, raw in self.tensors:
                f.write(raw)
                f.write(b"\0" * pad(len(raw)))


# ----------------------------------------------------------------------------
# reader

class GGUFReader:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.buf = f.read()
        self.pos = 0
        assert self._take(4) == GGUF_MAGIC, "not a GGUF file"
        self.version, n_tensors, n_kv = struct.unpack("<IQQ", self._take(20))
        self.kv = {}       # key -> value
        self.kv_types = {}  # key -> (type, elem_type)
        for _ in range(n_kv):
            key = self._read_str()
            vtype = self._u32()
            elem = None
            if vtype == T_ARRAY:
                elem = struct.unpack_from("<I", self.buf, self.pos)[0]
            self.kv[key] = self._read_value(vtype)
            self.kv_types[key] = (vtype, elem)
        self.alignment = int(self.kv.get("general.alignment", ALIGNMENT))
        self.tensors = {}  # name -> dict(ne, type, offset)
        self.tensor_order = []
        for _ in range(n_tensors):
            name = self._read_str()
            nd = self._u32()
            ne = list(struct.unpack_from(f"<{nd}Q", self.buf, self.pos)); self.pos += 8 * nd
            gtype = self._u32()
            off = struct.unpack_from("<Q", self.buf, self.pos)[0]; self.pos += 8
            self.tensors[name] = {"ne": ne, "type": gtype, "offset": off}
            self.tensor_order.append(name)
        self.data_start = self.pos + (-self.pos) % self.alignment

    def _take(self, n):
        b = self.buf[self.pos:self.pos + n]; self.pos += n; return b

    def _u32(self):
        v = struct.unpack_from("<I", self.buf, self.pos)[0]; self.pos += 4; return v

    def _read_str(self):
        n = struct.unpack_from("<Q", self.buf, self.pos)[0]; self.pos += 8
        return self._take(n).decode("utf-8", errors="replace")

    def _read_value(self, vtype):
        if vtype == T_STRING:
            return self._read_str()
        if vtype == T_ARRAY:
            elem = self._u32()
            n = struct.unpack_from("<Q", self.buf, self.pos)[0]; self.pos += 8
            if elem == T_STRING:
                return [self._read_str() for _ in range(n)]
            if elem == T_ARRAY:
                return [self._read_value(T_ARRAY) for _ in range(n)]
            dt = np.dtype(_NP_FOR_TYPE[elem])
            arr = np.frombuffer(self.buf, dtype=dt, count=n, offset=self.pos)
            self.pos += n * dt.itemsize
            return arr.tolist()
        fmt = _SCALAR_FMT[vtype]
        v = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def tensor(self, name):
        """Dequantised float32 numpy array in row-major shape reversed(ne)."""
        t = self.tensors[name]
        n = int(np.prod(t["ne"]))
        start = self.data_start + t["offset"]
        raw = self.buf[start:start + tensor_nbytes(t["type"], n)]
        if t["type"] == GGML_F32:
            a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif t["type"] == GGML_F16:
            a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif t["type"] == GGML_Q8_0:
            a = dequantize_q8_0(raw, n)
        else:
            raise ValueError(f"{name}: unsupported type {t['type']}")
        return a.reshape(list(reversed(t["ne"])))


def dump(path):
    r = GGUFReader(path)
    tname = {v: k for k, v in globals().items() if k.startswith("T_")}
    print(f"{path}: GGUF v{r.version}, {len(r.kv)} kv, {len(r.tensors)} tensors, "
          f"data at {r.data_start}, alignment {r.alignment}")
    for k, v in r.kv.items():
        vt, et = r.kv_types[k]
        ty = tname[vt] + (f"[{tname[et]}]" if et is not None else "")
        if isinstance(v, list):
            v = f"len={len(v)} first={v[:8]}"
        print(f"  {k:45s} {ty:22s} {v}")
    for name in r.tensor_order:
        t = r.tensors[name]
        print(f"  {name:32s} {GGML_TYPE_NAME.get(t['type'], t['type']):5s} ne={t['ne']} off={t['offset']}")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        dump(p)
