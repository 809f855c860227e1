"""Reference outputs of the Gemma 3 and Mllama image processors (transformers 4.50.0, the slow PIL/numpy
classes) and of PIL's bilinear resize, for the bit-exact TypeScript ports. Usage:

  PYTHONPATH=/tmp/llava-env/src HF_HUB_OFFLINE=1 /usr/bin/python3 tools/references/processors_gemma3_mllama.py

(see setup_env.sh for /tmp/llava-env). Writes test/fixtures/processors/{bilinear,gemma3,mllama}/:
PNG inputs (synthetic and deterministic), an index.json per folder, and the expected arrays:
  - .rgb  raw uint8 HWC bytes (PIL resize),
  - .f32  raw little-endian float32 (pixel values), for the small configurations.
Every case also records the sha256 of its full output and a few sampled values, which is all that is kept
for the released sizes (896 and 560), whose arrays would take megabytes.
"""
import hashlib
import json
import os
import shutil
import sys

import numpy as np
import PIL
from PIL import Image

import transformers
from transformers.image_utils import ChannelDimension
from transformers.models.gemma3.image_processing_gemma3 import Gemma3ImageProcessor
from transformers.models.mllama import image_processing_mllama as mll
from transformers.models.mllama.image_processing_mllama import MllamaImageProcessor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "test", "fixtures", "processors")
# Full arrays are written only up to this many float32 values; larger outputs keep their hash and samples.
MAX_STORED = 60_000


# ---------------------------------------------------------------- synthetic images
def gradient(w, h, seed):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx, fy = x / max(w - 1, 1), y / max(h - 1, 1)
    a = rng.uniform(0.5, 2.0, 3)
    img = np.stack([255 * fx, 255 * fy, 127.5 + 127.5 * np.sin(np.pi * a[2] * (fx + fy))], -1)
    return img


def noise(w, h, seed):
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.float64)


def shapes(w, h, seed, noise_patch=True):
    """Gradient background, flat rectangles and ellipses, a checkerboard, 1-pixel lines, a patch of
    noise: edges and extremes (0 and 255) for the resampler, yet compressible PNGs at large sizes."""
    rng = np.random.RandomState(seed)
    img = gradient(w, h, seed)
    y, x = np.mgrid[0:h, 0:w]
    for _ in range(6):
        cx, cy = rng.randint(0, w), rng.randint(0, h)
        rw, rh = rng.randint(1, max(2, w // 4)), rng.randint(1, max(2, h // 4))
        col = rng.choice([0, 255, 37, 200], 3)
        if rng.rand() < 0.5:
            img[max(0, cy - rh):cy + rh, max(0, cx - rw):cx + rw] = col
        else:
            img[((x - cx) / rw) ** 2 + ((y - cy) / rh) ** 2 < 1] = col
    cell = max(1, min(w, h) // 16)
    x0, y0 = w // 2, h // 2
    checker = (((x // cell) + (y // cell)) % 2 == 0) & (x >= x0) & (y >= y0) & (x < x0 + 8 * cell) & (y < y0 + 8 * cell)
    img[checker] = [255, 255, 255]
    img[h // 3, :] = [255, 0, 0]
    img[:, w // 3] = [0, 0, 255]
    if noise_patch:
        ph, pw = min(h, 48), min(w, 48)
        img[:ph, :pw] = rng.randint(0, 256, (ph, pw, 3))
    return img


KINDS = {"grad": gradient, "noise": noise, "shapes": shapes}


def make_image(kind, w, h, seed):
    arr = KINDS[kind](w, h, seed)
    return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "RGB")


def save_png(folder, name, img):
    path = os.path.join(folder, name)
    img.save(path, format="PNG", optimize=True)
    return name


# ---------------------------------------------------------------- outputs
def record(folder, name, arr, ext):
    """sha256, samples and (when small) the stored array of one expected output."""
    arr = np.ascontiguousarray(arr)
    raw = arr.astype("<f4").tobytes() if ext == "f32" else arr.astype(np.uint8).tobytes()
    flat = arr.reshape(-1)
    idx = sorted(set([0, flat.size - 1] + list(np.random.RandomState(flat.size).randint(0, flat.size, 14))))
    out = {
        "sha256": hashlib.sha256(raw).hexdigest(),
        "samples": [[int(i), float(flat[i]) if ext == "f32" else int(flat[i])] for i in idx],
        "expected": None,
    }
    if flat.size <= MAX_STORED:
        fname = f"{name}.{ext}"
        with open(os.path.join(folder, fname), "wb") as f:
            f.write(raw)
        out["expected"] = fname
    return out


def fresh(folder):
    path = os.path.join(OUT, folder)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def write_index(folder, index):
    """One line per list entry: readable diffs, and the long tables stay small."""
    lines = []
    for key, value in index.items():
        if isinstance(value, list):
            rows = [" " + json.dumps(v, separators=(",", ":")) for v in value]
            lines.append(f" {json.dumps(key)}: [\n" + ",\n".join(rows) + "\n ]")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    with open(os.path.join(folder, "index.json"), "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def header(note):
    return {"transformers": transformers.__version__, "pillow": PIL.__version__, "numpy": np.__version__,
            "generator": "tools/references/processors_gemma3_mllama.py", "note": note}


# ---------------------------------------------------------------- PIL bilinear
def bilinear():
    folder = fresh("bilinear")
    cases = []
    specs = [  # kind, in (w, h), out (w, h), box
        ("noise", (37, 23), (28, 56), None),
        ("noise", (100, 80), (56, 84), None),
        ("shapes", (84, 56), (112, 84), None),
        ("noise", (200, 130), (112, 70), None),
        ("noise", (51, 77), (37, 111), None),
        ("shapes", (64, 48), (64, 30), None),
        ("noise", (45, 33), (90, 33), None),
        ("noise", (7, 5), (48, 40), None),
        ("noise", (1, 1), (5, 3), None),
        ("noise", (5, 3), (1, 1), None),
        ("noise", (200, 150), (3, 200), None),
        ("shapes", (640, 480), (67, 45), None),
        ("noise", (33, 31), (32, 29), None),
        ("grad", (120, 90), (240, 181), None),
        ("noise", (64, 64), (40, 24), (3.5, 2.25, 60.75, 50.0)),
        ("noise", (50, 40), (30, 20), (10.0, 0.0, 50.0, 40.0)),
        # released-size targets: only hashed
        ("shapes", (7, 5), (896, 896), None),
        ("shapes", (1000, 700), (896, 896), None),
        ("shapes", (640, 480), (560, 420), None),
    ]
    for n, (kind, (w, h), (ow, oh), box) in enumerate(specs):
        name = f"{kind}_{w}x{h}_to_{ow}x{oh}" + ("_box" if box else "")
        img = make_image(kind, w, h, 1000 + n)
        png = save_png(folder, name + ".png", img)
        res = np.asarray(img.resize((ow, oh), resample=Image.BILINEAR, box=box))
        case = {"name": name, "input": png, "inSize": [w, h], "outSize": [ow, oh], "box": list(box) if box else None}
        case.update(record(folder, name, res, "rgb"))
        cases.append(case)
    write_index(folder, {**header("PIL Image.resize(size, Image.BILINEAR, box) of RGB images; expected = uint8 HWC"),
                         "resize": cases})


# ---------------------------------------------------------------- Gemma 3
def gemma3():
    folder = fresh("gemma3")
    with open("/work/shared/golden/gemma3/model/preprocessor_config.json") as f:
        public = json.load(f)
    released = {**public, "size": {"height": 896, "width": 896}, "image_seq_length": 256}
    released_pas = {**released, "do_pan_and_scan": True, "pan_and_scan_min_crop_size": 256,
                    "pan_and_scan_max_num_crops": 4, "pan_and_scan_min_ratio_to_activate": 1.2}
    small = {**public, "size": {"height": 40, "width": 48}, "do_pan_and_scan": True, "pan_and_scan_min_crop_size": 8,
             "pan_and_scan_max_num_crops": 4, "pan_and_scan_min_ratio_to_activate": 1.2}
    configs = {
        "released": released,
        "released_pas": released_pas,
        "small_pas": small,
        "small_pas_max2": {**small, "pan_and_scan_max_num_crops": 2, "pan_and_scan_min_ratio_to_activate": 2.0},
        "small_pas_min30": {**small, "pan_and_scan_min_crop_size": 30},
        "small_bicubic_plain": {**small, "resample": 3, "do_pan_and_scan": None, "do_normalize": False},
        "public": public,
    }
    specs = [  # config, kind, (w, h)
        ("released", "shapes", (1000, 700)),
        ("released", "noise", (160, 120)),
        ("released", "noise", (7, 5)),
        ("released_pas", "shapes", (1000, 300)),
        ("small_pas", "noise", (7, 5)),       # too small for crops: 0
        ("small_pas", "noise", (80, 40)),     # 2 crops
        ("small_pas", "noise", (161, 37)),    # 4 crops, the last one narrower
        ("small_pas", "noise", (30, 101)),    # portrait: 3 crops
        ("small_pas", "noise", (50, 45)),     # ratio below 1.2: 0 crops
        ("small_pas", "shapes", (48, 40)),    # already the target size
        ("small_pas_max2", "noise", (161, 37)),
        ("small_pas_max2", "noise", (70, 40)),
        ("small_pas_min30", "noise", (100, 20)),
        ("small_pas_min30", "noise", (130, 31)),
        ("small_bicubic_plain", "noise", (161, 37)),
        ("public", "noise", (33, 70)),
        ("public", "grad", (300, 100)),
    ]
    cases = []
    for n, (cfg_name, kind, (w, h)) in enumerate(specs):
        name = f"{cfg_name}_{kind}_{w}x{h}"
        img = make_image(kind, w, h, 2000 + n)
        png = save_png(folder, name + ".png", img)
        proc = Gemma3ImageProcessor(**configs[cfg_name])
        out = proc.preprocess(img, return_tensors="np")
        pv = out["pixel_values"]
        assert pv.dtype == np.float32, pv.dtype
        case = {"name": name, "config": cfg_name, "input": png, "size": [w, h], "shape": list(pv.shape),
                "numCrops": int(np.asarray(out["num_crops"]).reshape(-1)[0])}
        case.update(record(folder, name, pv, "f32"))
        cases.append(case)

    # pan-and-scan arithmetic over many sizes (no pixels): crop count and the shapes numpy slicing gives
    proc = Gemma3ImageProcessor(**small)
    pas = []
    dims = [4, 5, 7, 16, 31, 64, 100, 255, 256, 257, 300, 511, 512, 600, 767, 896, 1000, 1023, 1200, 1536, 2000, 3000]
    settings = [(256, 4, 1.2), (8, 4, 1.2), (100, 3, 1.5), (300, 8, 2.0), (64, 2, 1.0)]
    for h in dims:
        for w in dims:
            image = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (h, w, 3))
            for mc, mx, mr in settings:
                crops = proc.pan_and_scan(image, mc, mx, mr, input_data_format=ChannelDimension.LAST)
                pas.append([h, w, mc, mx, mr, [[c.shape[0], c.shape[1]] for c in crops]])
    index = {**header("Gemma3ImageProcessor.preprocess(image, return_tensors='np'); expected = pixel_values "
                      "[1 + crops, 3, H, W] float32. panAndScan: [height, width, min_crop_size, max_num_crops, "
                      "min_ratio_to_activate, crop shapes [h, w]] from pan_and_scan()"),
             "configs": configs, "cases": cases, "panAndScan": pas}
    write_index(folder, index)


# ---------------------------------------------------------------- Mllama
def mllama():
    folder = fresh("mllama")
    with open("/work/shared/golden/mllama/model/preprocessor_config.json") as f:
        public = json.load(f)
    configs = {
        "released": {**public, "size": {"height": 560, "width": 560}, "max_image_tiles": 4},
        "tile32_max4": {**public, "size": {"height": 32, "width": 32}, "max_image_tiles": 4},
        "tile32_max1": {**public, "size": {"height": 32, "width": 32}, "max_image_tiles": 1},
        "tile16_max6_bicubic": {**public, "size": {"height": 16, "width": 16}, "max_image_tiles": 6, "resample": 3,
                                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
    }
    specs = [
        ("released", "shapes", (1000, 700)),
        ("released", "noise", (160, 120)),
        ("released", "noise", (7, 5)),
        ("released", "shapes", (300, 1500)),
        ("tile32_max4", "noise", (7, 5)),
        ("tile32_max4", "noise", (33, 31)),
        ("tile32_max4", "noise", (100, 30)),
        ("tile32_max4", "noise", (30, 100)),
        ("tile32_max4", "shapes", (64, 64)),
        ("tile32_max4", "noise", (50, 70)),
        ("tile32_max4", "noise", (129, 65)),
        ("tile32_max4", "noise", (32, 32)),
        ("tile32_max1", "noise", (100, 30)),
        ("tile32_max1", "noise", (20, 9)),
        ("tile16_max6_bicubic", "noise", (70, 41)),
        ("tile16_max6_bicubic", "noise", (9, 50)),
    ]
    cases = []
    for n, (cfg_name, kind, (w, h)) in enumerate(specs):
        name = f"{cfg_name}_{kind}_{w}x{h}"
        img = make_image(kind, w, h, 3000 + n)
        png = save_png(folder, name + ".png", img)
        cfg = configs[cfg_name]
        proc = MllamaImageProcessor(**cfg)
        out = proc.preprocess([[img]], return_tensors="np")
        pv = out["pixel_values"]  # (1, 1, max_image_tiles, 3, tile, tile)
        assert pv.dtype == np.float32, pv.dtype
        num_tiles = int(out["num_tiles"][0][0])
        case = {"name": name, "config": cfg_name, "input": png, "size": [w, h], "shape": list(pv.shape[2:]),
                "numTiles": num_tiles, "aspectRatioId": int(out["aspect_ratio_ids"][0, 0]),
                "aspectRatioMask": [int(v) for v in out["aspect_ratio_mask"][0, 0]],
                # the full padded array's hash; the stored array is the real tiles only (the rest is zeros)
                "sha256Padded": hashlib.sha256(pv[0, 0].astype("<f4").tobytes()).hexdigest()}
        assert not pv[0, 0, num_tiles:].any()
        case.update(record(folder, name, pv[0, 0, :num_tiles], "f32"))
        cases.append(case)

    # canvas arithmetic over many sizes: [height, width, max_image_tiles, tile, canvas [h, w], resized [h, w], id]
    canvas = []
    dims = [1, 2, 5, 7, 16, 31, 32, 33, 63, 64, 65, 100, 200, 333, 448, 559, 560, 561, 720, 1000, 1120, 1121, 1500, 2240,
            4000]
    for tile, tiles_list in [(560, [1, 2, 4, 6, 8]), (32, [1, 4, 9])]:
        for max_tiles in tiles_list:
            ratios = mll.get_all_supported_aspect_ratios(max_tiles)
            for h in dims:
                for w in dims:
                    ch, cw = (int(v) for v in mll.get_optimal_tiled_canvas(h, w, max_tiles, tile))
                    nh, nw = mll.get_image_size_fit_to_canvas(h, w, ch, cw, tile)
                    rid = ratios.index((ch // tile, cw // tile)) + 1
                    canvas.append([h, w, max_tiles, tile, [ch, cw], [int(nh), int(nw)], rid])
    ratios = {str(n): [list(r) for r in mll.get_all_supported_aspect_ratios(n)] for n in range(1, 10)}
    index = {**header("MllamaImageProcessor.preprocess([[image]], return_tensors='np'); expected = pixel_values[0, 0, "
                      ":num_tiles] float32 [tiles, 3, tile, tile] (sha256Padded: all max_image_tiles tiles). canvas: "
                      "[height, width, max_image_tiles, tile_size, optimal canvas [h, w], size fit to canvas [h, w], "
                      "aspect ratio id]; supportedAspectRatios as get_all_supported_aspect_ratios returns them"),
             "configs": configs, "cases": cases, "canvas": canvas, "supportedAspectRatios": ratios}
    write_index(folder, index)


if __name__ == "__main__":
    which = sys.argv[1:] or ["bilinear", "gemma3", "mllama"]
    for w in which:
        {"bilinear": bilinear, "gemma3": gemma3, "mllama": mllama}[w]()
        print("wrote", os.path.join(OUT, w))
