"""Qwen2VLImageProcessor (transformers 4.50, the slow PIL/numpy one) for still images,
and a minimal safetensors reader/writer (F32/I64/I32 little-endian)."""
import json
import struct

import numpy as np
from PIL import Image

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def smart_resize(height, width, factor=28, min_pixels=56 * 56, max_pixels=14 * 14 * 4 * 1280):
    if height < factor or width < factor:
        raise ValueError(f"image is too small: {height}x{width}")
    h_bar = round(height / factor) * factor  # Python round: half to even
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = ((height * width) / max_pixels) ** 0.5
        import math
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = (min_pixels / (height * width)) ** 0.5
        import math
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def preprocess(img, cfg):
    """PIL RGB image -> (pixel_values float32 [N, 3*T*P*P], (1, gh, gw))."""
    P, M, T = cfg["patch_size"], cfg["merge_size"], cfg["temporal_patch_size"]
    img = img.convert("RGB")
    W, H = img.size
    h, w = smart_resize(H, W, P * M, cfg["min_pixels"], cfg["max_pixels"])
    if (h, w) != (H, W):
        img = img.resize((w, h), Image.BICUBIC, reducing_gap=None)
    a = np.asarray(img)
    x = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(cfg.get("image_mean", MEAN), np.float32)) / np.array(cfg.get("image_std", STD), np.float32)
    x = x.transpose(2, 0, 1)[None]  # [1, C, H, W]
    x = np.tile(x, (T, 1, 1, 1))  # [T, C, H, W]
    gh, gw = h // P, w // P
    x = x.reshape(1, T, 3, gh // M, M, P, gw // M, M, P)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return np.ascontiguousarray(x.reshape(gh * gw, 3 * T * P * P)), (1, gh, gw)


DT = {"F32": np.float32, "I64": np.int64, "I32": np.int32, "F64": np.float64}
RDT = {np.dtype(v).str: k for k, v in DT.items()}


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    d = b[8 + n:]
    return {k: np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], np.dtype(DT[v["dtype"]]).newbyteorder("<")).reshape(v["shape"])
            for k, v in h.items()}


def write_safetensors(path, tensors, metadata=None):
    header, chunks, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for k in sorted(tensors):
        a = np.ascontiguousarray(tensors[k])
        dt = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.float64): "F64"}[a.dtype]
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)
