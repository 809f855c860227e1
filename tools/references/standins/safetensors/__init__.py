"""Minimal pure-Python stand-in for the `safetensors` package (reader/writer only).

Only what transformers 4.50 uses for loading/saving PyTorch checkpoints:
safe_open(...).keys()/metadata()/get_tensor()/get_slice(), safetensors.torch.load_file/save_file,
storage_ptr/storage_size. Tensors are read byte-exactly from the file (little-endian).
"""
import json
import struct

__version__ = "0.4.5"

_DT = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1),
    "U8": ("uint8", 1), "BOOL": ("bool", 1),
}


def _read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n).decode("utf-8"))
    return n, header


def _to_torch(raw, dtype, shape):
    import torch
    tdt = getattr(torch, _DT[dtype][0])
    if len(raw) == 0:
        return torch.empty(shape, dtype=tdt)
    t = torch.frombuffer(bytearray(raw), dtype=tdt)
    return t.reshape(shape).clone()


class _Slice:
    def __init__(self, opener, name):
        self._o = opener
        self._name = name

    def get_shape(self):
        return list(self._o._header[self._name]["shape"])

    def get_dtype(self):
        return self._o._header[self._name]["dtype"]

    def __getitem__(self, idx):
        t = self._o.get_tensor(self._name)
        return t[idx]


class safe_open:
    def __init__(self, path, framework="pt", device="cpu"):
        self._path = str(path)
        self._n, header = _read_header(self._path)
        self._meta = header.pop("__metadata__", None)
        self._header = header
        with open(self._path, "rb") as f:
            self._data = f.read()[8 + self._n:]

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def keys(self):
        return list(self._header.keys())

    def metadata(self):
        return self._meta

    def get_tensor(self, name):
        info = self._header[name]
        s, e = info["data_offsets"]
        return _to_torch(self._data[s:e], info["dtype"], info["shape"])

    def get_slice(self, name):
        return _Slice(self, name)
