"""Reference outputs of MiniCPMVImageProcessor and of the prompt expansion (the MiniCPM-V 2.6 remote code, see
common.py) for the bit-exact TypeScript port (src/models/minicpmv/imageProcessing.ts). Usage:

  PYTHONPATH=/tmp/llava-env/src HF_HUB_OFFLINE=1 /usr/bin/python3 tools/references/minicpmv/processor_fixtures.py

Writes test/fixtures/processors/minicpmv/: PNG inputs (synthetic, deterministic), index.json, and per case the
expected pixel values as raw little-endian float32 (.f32: every slice's [3, patch, L * patch] array, flattened, in
the processor's order: the source image, then the slices row by row) when small; the released size (448) keeps
only the sha256 of that concatenation and a few sampled values.

index.json:
  configs     preprocessor_config.json contents (public / BF16 fixtures, the released 2.6 values, variants)
  cases       per image: the call's options, grid [cols, rows] or null, source / refine sizes (W, H), tgt_sizes
              [[h, w], ...] in patches, the image's placeholder text (as get_slice_image_placeholder writes it for
              image index `imageIndex`), expected pixel values
  geometry    [W, H, scale_resolution, patch_size, max_slice_nums, grid or null, source [W, H], refine [W, H] or null]
              for many sizes and settings (find_best_resize / get_sliced_grid / get_refine_size, no pixels)
  expansions  prompts with several '(<image>./</image>)' tags and the text the processor tokenizes
"""
import hashlib
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import processors_gemma3_mllama as pgm  # noqa: E402
from processors_gemma3_mllama import make_image, record, save_png, write_index  # noqa: E402

pgm.MAX_STORED = 10_000  # full arrays up to 40 kB; larger outputs keep their sha256 and samples

OUT = os.path.join(common.REPO, "test", "fixtures", "processors", "minicpmv")
R = common.remote()
IPM = R.image_processing_minicpmv
Proc = IPM.MiniCPMVImageProcessor

PUBLIC = json.load(open(os.path.join(common.PUBLIC, "model", "preprocessor_config.json")))
RELEASED = dict(PUBLIC, scale_resolution=448, image_feature_size=64)  # openbmb/MiniCPM-V-2_6's values
CONFIGS = {
    "public": PUBLIC,
    "bf16": dict(PUBLIC, scale_resolution=70, image_feature_size=8),
    "released": RELEASED,
    "released_no_image_id": dict(RELEASED, use_image_id=False),
    "released_slice_mode_off": dict(RELEASED, slice_mode=False),
    "public_max4": dict(PUBLIC, max_slice_nums=4),
    "public_max1": dict(PUBLIC, max_slice_nums=1),
    "public_clip_norm_patch10": dict(PUBLIC, patch_size=10, scale_resolution=40,
                                     norm_mean=[0.48145466, 0.4578275, 0.40821073],
                                     norm_std=[0.26862954, 0.26130258, 0.27577711]),
    "released_defaults": {},  # every key absent: MiniCPMVImageProcessor's own defaults
}


def all_levels(w, h, seed):
    """Every byte value 0..255 in every channel (shuffled), for the normalisation LUT."""
    rng = np.random.RandomState(seed)
    n = w * h
    chans = [np.resize(rng.permutation(256), n) for _ in range(3)]
    return np.stack(chans, -1).reshape(h, w, 3).astype(np.float64)


def image_of(kind, w, h, seed):
    from PIL import Image
    if kind == "levels":
        return Image.fromarray(all_levels(w, h, seed).astype(np.uint8), "RGB")
    if kind == "smooth":
        return common.synth_smooth(w, h, seed)
    return make_image(kind, w, h, seed)


class ChannelsLast:
    """MiniCPMVImageProcessor.preprocess guesses the channel axis of the FIRST image from its array shape, so a first
    image 1 or 3 px high is taken as channel-first and preprocess raises (probes.json: channel_guess). For those inputs
    the expected values are what the same code computes when the guess says channels-last."""

    def __enter__(self):
        self.old = IPM.infer_channel_dimension_format
        IPM.infer_channel_dimension_format = lambda *a, **k: IPM.ChannelDimension.LAST

    def __exit__(self, *a):
        IPM.infer_channel_dimension_format = self.old


def run(cfg_name, img, opts):
    proc = Proc(**CONFIGS[cfg_name])
    msn = opts.get("maxSliceNums")
    raises = None
    try:
        out = proc.preprocess(img, max_slice_nums=msn, return_tensors=None)
    except ValueError as e:
        raises = f"{type(e).__name__}: {e}"
        with ChannelsLast():
            out = proc.preprocess(img, max_slice_nums=msn, return_tensors=None)
    pvs = out["pixel_values"][0]
    tgt = np.asarray(out["tgt_sizes"][0]).tolist()
    info = common.slicing_info(proc, img.size, msn)
    ph = proc.get_slice_image_placeholder(img.size, opts.get("imageIndex", 0), msn, opts.get("useImageId"))
    for pv, (th, tw) in zip(pvs, tgt):
        assert pv.dtype == np.float32 and pv.shape == (3, proc.patch_size, th * tw * proc.patch_size), pv.shape
    flat = np.concatenate([pv.reshape(-1) for pv in pvs])
    return proc, info, tgt, ph, flat, [list(pv.shape) for pv in pvs], raises


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    specs = [  # config, kind, (W, H), options
        ("public", "noise", (150, 70), {}),            # the public case's geometry: 3x1
        ("public", "noise", (40, 30), {}),             # no slicing, upscaled
        ("public", "levels", (56, 56), {}),            # no slicing, already the target size: no resize
        ("public", "noise", (90, 60), {}),             # 2x1
        ("public", "noise", (60, 180), {}),            # 1x3
        ("public", "noise", (120, 110), {"imageIndex": 3}),
        ("public", "shapes", (170, 170), {}),          # 3x3 (max_slice_nums 9)
        ("public", "grad", (170, 170), {"maxSliceNums": 4}),
        ("public", "shapes", (400, 140), {}),          # capped at 9: 4x2
        ("public", "noise", (400, 30), {}),            # 5x1, source 196x14
        ("public", "noise", (30, 400), {}),            # 1x5, source 14x210 (not the transpose of 400x30)
        ("public", "noise", (1, 1), {}),               # 1x1: the reference raises (channel guess)
        ("public", "noise", (50, 1), {}),              # 1 px high: the reference raises
        ("public", "noise", (50, 3), {"imageIndex": 1}),  # 3 px high: the reference raises
        ("public", "noise", (50, 2), {}),
        ("public", "noise", (1, 50), {}),
        ("public", "noise", (2, 2), {}),
        ("public", "noise", (13, 7), {}),
        ("public", "noise", (57, 55), {}),             # 3135 px, just below 56^2: not sliced
        ("public", "noise", (57, 56), {}),             # 3192 px, just above: 2 slices, grid 2x1
        ("public", "noise", (60, 60), {}),             # square: grids 1x2 and 2x1 tie, the first (1 col, 2 rows) wins
        ("public", "grad", (1000, 20), {}),            # ratio 50
        ("public", "grad", (20, 1000), {}),
        ("public", "smooth", (71, 333), {"useImageId": False}),
        ("public_max4", "shapes", (300, 280), {}),
        ("public_max1", "shapes", (300, 280), {}),     # max_slice_nums 1: never sliced
        ("bf16", "noise", (60, 50), {}),               # height 63/14 = 4.5 rounds to 4
        ("bf16", "smooth", (150, 140), {}),
        ("bf16", "smooth", (200, 60), {"imageIndex": 1}),
        ("public_clip_norm_patch10", "levels", (40, 40), {}),
        ("public_clip_norm_patch10", "noise", (97, 41), {}),
        ("released", "shapes", (1000, 700), {}),
        ("released", "shapes", (448, 448), {}),
        ("released", "shapes", (300, 200), {}),        # below 448^2: no slicing, upscaled
        ("released", "shapes", (1500, 300), {"imageIndex": 2}),
        ("released", "shapes", (2000, 2000), {}),
        ("released", "noise", (7, 5), {}),
        ("released_no_image_id", "shapes", (1000, 700), {}),
        ("released_slice_mode_off", "noise", (150, 70), {}),   # slice_mode off: no resize, 150x70 -> 140x70 kept
        ("released_slice_mode_off", "levels", (56, 42), {}),
        ("released_defaults", "shapes", (600, 500), {}),
    ]
    cases = []
    for n, (cfg_name, kind, (w, h), opts) in enumerate(specs):
        name = f"{cfg_name}_{kind}_{w}x{h}" + "".join(f"_{k}{v}" for k, v in sorted(opts.items()))
        img = image_of(kind, w, h, 5000 + n)
        png = save_png(OUT, name + ".png", img)
        proc, info, tgt, ph, flat, shapes, raises = run(cfg_name, img, opts)
        case = {"name": name, "config": cfg_name, "input": png, "size": [w, h], "options": opts,
                "grid": info["grid_cols_rows"], "sourceSize": info["source_wh"], "refineSize": info["refine_wh"],
                "tgtSizes": tgt, "shapes": shapes, "placeholder": ph, "referenceRaises": raises}
        case.update(record(OUT, name, flat, "f32"))
        cases.append(case)

    # geometry over many sizes (no pixels)
    geometry = []
    dims = [1, 2, 3, 7, 13, 14, 15, 28, 29, 55, 56, 57, 63, 99, 111, 150, 224, 300, 447, 448, 449, 640, 700, 896,
            1000, 1080, 1920, 3000, 4032, 8000]
    for scale, patch, msns in [(448, 14, (9, 4)), (56, 14, (9,)), (70, 14, (9,)), (40, 10, (16,))]:
        for msn in msns:
            proc = Proc(**dict(PUBLIC, scale_resolution=scale, patch_size=patch, max_slice_nums=msn))
            for H in dims:
                for W in dims:
                    i = common.slicing_info(proc, (W, H))
                    geometry.append([W, H, scale, patch, msn, i["grid_cols_rows"], i["source_wh"], i["refine_wh"]])

    # prompt expansion through the processor (text part of _convert_images_texts_to_inputs)
    expansions = []
    tok = None
    for cfg_name, text, sizes, opts in [
        ("public", "(<image>./</image>)\nWhat is in this image?", [(150, 70)], {}),
        ("public", "<|im_start|>user\n(<image>./</image>)\n(<image>./</image>)\nCompare.<|im_end|>\n",
         [(90, 60), (50, 120)], {}),
        ("public", "A(<image>./</image>)B(<image>./</image>)C(<image>./</image>)", [(40, 30), (170, 170), (60, 180)],
         {}),
        ("public", "(<image>./</image>)(<image>./</image>)", [(120, 110), (400, 30)], {"useImageId": False}),
        ("public", "x (<image>./</image>) y", [(170, 170)], {"maxSliceNums": 4}),
        ("released", "(<image>./</image>)\nDescribe.", [(1000, 700)], {}),
        ("released_no_image_id", "(<image>./</image>)\nDescribe.", [(1000, 700)], {}),
        ("released_slice_mode_off", "(<image>./</image>)\nDescribe.", [(1000, 700)], {}),
        ("bf16", "(<image>./</image>)\n(<image>./</image>)", [(60, 50), (200, 60)], {}),
    ]:
        proc = Proc(**CONFIGS[cfg_name])
        fake = type("P", (), {"image_processor": proc})()
        expanded = common.expand_prompt(fake, text, sizes, opts.get("maxSliceNums"), opts.get("useImageId"))
        expansions.append({"config": cfg_name, "text": text, "imageSizes": [list(s) for s in sizes], "options": opts,
                           "grids": [common.slicing_info(proc, s, opts.get("maxSliceNums"))["grid_cols_rows"]
                                     for s in sizes],
                           "expanded": expanded})
    # the same expansions through the real processor (tokenize, decode back): the text is what it tokenizes
    model_dir = os.path.join(common.PUBLIC, "model")
    tok = R.tokenization_minicpmv_fast.MiniCPMVTokenizerFast.from_pretrained(model_dir)
    for e in expansions:
        proc = Proc(**CONFIGS[e["config"]])
        pr = R.processing_minicpmv.MiniCPMVProcessor(proc, tok)
        imgs = [image_of("smooth", w, h, 1) for (w, h) in e["imageSizes"]]
        r = pr([e["text"]], [imgs], max_slice_nums=e["options"].get("maxSliceNums"),
               use_image_id=e["options"].get("useImageId"), return_tensors="pt")
        assert tok.decode(r["input_ids"][0].tolist(), skip_special_tokens=False,
                          clean_up_tokenization_spaces=False) == e["expanded"], e["text"]

    header = {"generator": "tools/references/minicpmv/processor_fixtures.py", **common.versions(),
              "note": "MiniCPMVImageProcessor.preprocess(image, max_slice_nums=options.maxSliceNums) of the remote code; "
                      "expected = every slice's pixel_values [3, patch, tgt_h * tgt_w * patch] float32 flattened and "
                      "concatenated (source image first, then the slices row by row); placeholder = "
                      "get_slice_image_placeholder(size, options.imageIndex or 0, options.maxSliceNums, "
                      "options.useImageId); referenceRaises: the reference's error for this input (a first image 1 or "
                      "3 px high), the expected values then being what it computes when told the channel axis is last"}
    write_index(OUT, {**header, "configs": CONFIGS, "cases": cases, "expansions": expansions, "geometry": geometry})
    print("wrote", OUT, len(cases), "cases", len(geometry), "geometry rows")


if __name__ == "__main__":
    main()
