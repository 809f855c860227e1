"""Reference outputs of DeepSeek-VL2's image preprocessing and image-token layout for the bit-exact
TypeScript port (src/models/deepseek_vl2/imageProcessing.ts). Usage:

  PYTHONPATH=/tmp/llava-env/src HF_HUB_OFFLINE=1 /usr/bin/python3 tools/references/deepseek_vl2/processor_fixtures.py

Writes test/fixtures/processors/deepseek_vl2/: PNG inputs (synthetic, deterministic), index.json and the expected
arrays (.f32 raw little-endian float32, for outputs up to 30,000 values; larger ones keep their sha256 and samples).
Everything comes from DeepSeek's own code (dslib.py): DeepseekVLV2Processor.tokenize_with_images("<image>", [image],
cropping=...) for the pixel values, the tile grid and the token count; select_best_resolution for a table of sizes;
PIL ImageOps.contain for a table of resize targets; and DeepseekVLV2ForCausalLM.prepare_inputs_embeds, run on the
public / small checkpoints with the projector replaced by one that returns each row's index (image_newline -1,
view_seperator -2), for the order of the image tokens.
"""
import copy
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dslib  # noqa: E402
import processors_gemma3_mllama as pf  # noqa: E402  (synthetic images, record(), write_index())

FOLDER = "deepseek_vl2"
pf.MAX_STORED = 30_000  # two 70 px tiles; larger outputs keep their sha256 and samples
RELEASED_TILE = 384
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def configs():
    pub = json.load(open(os.path.join(dslib.PUBLIC, "model", "processor_config.json")))
    small = json.load(open(os.path.join(dslib.EXTRA, "deepseek_vl2_small", "model", "processor_config.json")))
    released = copy.deepcopy(pub)
    released["candidate_resolutions"] = [[w * RELEASED_TILE // 100, h * RELEASED_TILE // 100] for w, h in pub["candidate_resolutions"]]
    clip = copy.deepcopy(pub)
    clip.update(image_mean=CLIP_MEAN, image_std=CLIP_STD)
    plain = copy.deepcopy(pub)
    plain["normalize"] = False
    return {"public": pub, "small": small, "released": released, "clip_mean": clip, "no_normalize": plain}


def processor(cfg, tok):
    with open(os.devnull, "w") as devnull:
        import contextlib
        with contextlib.redirect_stdout(devnull):
            return dslib.DeepseekVLV2ProcessorRef(tok, **{k: cfg[k] for k in dslib.PROC_KEYS if k in cfg})


def main():
    folder = pf.fresh(FOLDER)
    cfgs = configs()
    tok = dslib.DeepseekByteBPETokenizer.from_pretrained(os.path.join(dslib.PUBLIC, "model"))
    procs = {k: processor(v, tok) for k, v in cfgs.items()}
    cases = []
    specs = [  # config, kind, (w, h), cropping
        ("public", "noise", (1, 1), True), ("public", "noise", (3, 2), True), ("public", "shapes", (7, 5), True),
        ("public", "noise", (33, 71), True), ("public", "shapes", (100, 100), True), ("public", "noise", (101, 99), True),
        ("public", "shapes", (150, 70), True), ("public", "shapes", (320, 70), True), ("public", "grad", (60, 250), True),
        ("public", "shapes", (280, 260), True), ("public", "shapes", (1000, 20), True), ("public", "shapes", (20, 1000), True),
        ("public", "noise", (1, 900), True), ("public", "noise", (1, 1001), True),
        ("public", "shapes", (12, 1000), True), ("public", "shapes", (45, 300), True), ("public", "noise", (203, 101), True),
        ("public", "shapes", (150, 70), False), ("public", "shapes", (320, 70), False),
        ("small", "noise", (5, 3), True), ("small", "shapes", (130, 120), True), ("small", "noise", (71, 69), True),
        ("small", "shapes", (50, 150), True), ("small", "grad", (333, 77), True), ("small", "noise", (69, 70), True),
        ("clip_mean", "shapes", (150, 70), True), ("clip_mean", "noise", (41, 97), True),
        ("no_normalize", "shapes", (150, 70), True),
        ("released", "shapes", (1000, 700), True), ("released", "shapes", (640, 480), True), ("released", "shapes", (300, 2000), True),
    ]
    inputs = {}
    for i, (cname, kind, (w, h), cropping) in enumerate(specs):
        key = (kind, w, h)
        if key not in inputs:
            inputs[key] = pf.save_png(folder, f"{kind}_{w}x{h}.png", pf.make_image(kind, w, h, 4000 + i))
        img = Image.open(os.path.join(folder, inputs[key])).convert("RGB")
        proc = procs[cname]
        name = f"{cname}_{kind}_{w}x{h}" + ("" if cropping else "_nocrop")
        try:
            ids, images, seq_mask, crop, ntok = proc.tokenize_with_images("<image>", [img], bos=False, eos=False,
                                                                         cropping=cropping)
        except (ValueError, TypeError) as e:  # the reference fails on this image
            cases.append({"name": name, "config": cname, "input": inputs[key], "size": [w, h], "cropping": cropping,
                          "error": f"{type(e).__name__}: {e}"})
            print(name, "error", e, flush=True)
            continue
        pv = torch.stack(images).numpy().astype(np.float32)
        best = dslib.PV.select_best_resolution(img.size, proc.candidate_resolutions) if cropping else None
        c = {"name": name, "config": cname, "input": inputs[key], "size": [w, h], "cropping": cropping,
             "best_resolution": list(best) if best else [proc.image_size, proc.image_size],
             "grid": [int(x) for x in crop[0]], "num_image_tokens": int(ntok[0]), "shape": list(pv.shape),
             "pad_colour": [int(x * 255) for x in proc.image_transform.mean]}
        assert len(ids) == ntok[0] and all(t == proc.image_token_id for t in ids) and all(seq_mask)
        c.update(pf.record(folder, name, pv, "f32"))
        cases.append(c)
        print(name, c["grid"], c["shape"], c["expected"], flush=True)

    # select_best_resolution over many sizes (public and released candidates); null = the reference fails
    rng = np.random.RandomState(7)
    sizes = [(int(a), int(b)) for a, b in zip(rng.randint(1, 1200, 300), rng.randint(1, 1200, 300))]
    sizes += [(1, 1), (1, 900), (1, 901), (901, 1), (900, 1), (1, 1000), (100, 100), (200, 100), (99, 101), (384, 384),
              (3456, 10), (10, 3456), (4000, 3000), (1, 3456), (1, 3457), (768, 1152), (2, 2000)]
    best = []
    for cname in ("public", "released", "small"):
        cand = procs[cname].candidate_resolutions
        for w, h in sizes:
            b = dslib.PV.select_best_resolution((w, h), cand)
            best.append([cname, w, h, list(b) if b else None])

    # PIL ImageOps.contain target sizes (what ImageOps.pad resizes to before pasting)
    contain = []
    for _ in range(300):
        w, h = int(rng.randint(1, 700)), int(rng.randint(1, 700))
        bw, bh = int(rng.randint(1, 9)) * 70, int(rng.randint(1, 9)) * 70
        if rng.rand() < 0.3:
            bh = bw
        try:
            r = ImageOps.contain(Image.new("RGB", (w, h)), (bw, bh), Image.Resampling.BICUBIC)
            contain.append([w, h, bw, bh, list(r.size)])
        except ValueError:
            contain.append([w, h, bw, bh, None])
    for w, h, bw, bh in [(3, 2, 100, 100), (150, 70, 200, 100), (5, 3, 70, 70), (1000, 20, 100, 100), (1, 1000, 100, 100),
                         (100, 100, 100, 100), (201, 100, 100, 100), (199, 100, 100, 100)]:
        try:
            contain.append([w, h, bw, bh, list(ImageOps.contain(Image.new("RGB", (w, h)), (bw, bh)).size)])
        except ValueError:
            contain.append([w, h, bw, bh, None])

    # token layout as prepare_inputs_embeds builds it
    layouts = []
    for mname, mdir in (("public", os.path.join(dslib.PUBLIC, "model")), ("small", os.path.join(dslib.EXTRA, "deepseek_vl2_small", "model"))):
        model = dslib.load_model(mdir)
        proc = dslib.load_processor(mdir)
        S = proc.image_size
        hw = dslib.image_token_count(proc, 1, 1)  # only for the per-side count below
        side = int(np.ceil((S // proc.patch_size) / proc.downsample_ratio))
        hw = side * side
        D = model.config.projector_config.n_embed

        class IndexProjector(torch.nn.Module):
            def forward(self, x):
                n = x.shape[0]
                return torch.arange(n * hw, dtype=torch.float32).reshape(n, hw, 1).expand(n, hw, D).clone()
        model.projector = IndexProjector()
        model.vision = torch.nn.Identity()
        with torch.no_grad():
            model.image_newline.fill_(-1.0)
            model.view_seperator.fill_(-2.0)
            model.language.model.embed_tokens.weight.zero_()
        for pos in ("head", "tail"):
            model.global_view_pos = pos
            for gw, gh in [(1, 1), (2, 1), (1, 2), (3, 3), (4, 1), (1, 3), (2, 3), (9, 1), (1, 9), (3, 2)]:
                n = dslib.image_token_count(proc, gw, gh)
                ids = torch.tensor([[0] + [proc.image_token_id] * n + [5]])
                mask = ids == proc.image_token_id
                images = torch.zeros(1, 1 + gw * gh, 3, S, S)
                with torch.no_grad():
                    emb = model.prepare_inputs_embeds(input_ids=ids, images=images, images_seq_mask=mask,
                                                      images_spatial_crop=torch.tensor([[[gw, gh]]]))
                src = emb[0, 1:1 + n, 0]
                assert torch.equal(src, emb[0, 1:1 + n, -1])
                layouts.append({"model": mname, "global_view_pos": pos, "grid": [gw, gh], "tokens_per_side": side,
                                "num_tokens": n, "source": [int(v) for v in src.tolist()]})
    pf.write_index(folder, {**pf.header("DeepseekVLV2Processor.tokenize_with_images('<image>', [image], cropping) "
                                        "(DeepSeek-VL2 @ ef9f91e2); expected = the stacked views [1 + tiles, 3, S, S] float32; "
                                        "grid = images_spatial_crop [width tiles, height tiles]; best = select_best_resolution "
                                        "[config, w, h, [width, height] or null]; contain = PIL ImageOps.contain "
                                        "[w, h, box w, box h, [w, h] or null]; layouts: prepare_inputs_embeds' order of "
                                        "projector rows (tile * h * h + index), -1 image_newline, -2 view_seperator"),
                            "generator": "tools/references/deepseek_vl2/processor_fixtures.py",
                            "configs": cfgs, "cases": cases, "best": best, "contain": contain, "layouts": layouts})


if __name__ == "__main__":
    main()
