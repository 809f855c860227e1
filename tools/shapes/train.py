"""Trains the tiny Qwen2.5-VL on generated shape pictures and writes the Hugging Face folder.

  /usr/bin/python3 tools/shapes/train.py --out models/iris-shapes-v1 --steps 2400

Checkpoints go to --work (default /tmp/iris-shapes-work) every --ckpt-every steps; a run that
is cut can be resumed with the same command (it continues from the last checkpoint).
`--export-only` writes the folder from the last checkpoint.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
from model import Qwen25VL, rope_index  # noqa: E402
from processor import preprocess, read_safetensors, write_safetensors  # noqa: E402
from tokenizer import ByteBPE, train_bpe  # noqa: E402

TRAIN_SEED = 1          # training conversations: make_sample(1, i) for i = 0, 1, 2, ...
TOKENIZER_SEED = 2      # texts the BPE merges are learned from
NUM_MERGES = 480

PREPROCESSOR = {
    "min_pixels": 12544,   # 112 x 112
    # 224 x 224 = 50176 pixels: a square picture of 224 px or more becomes 224 x 224 -> 16 x 16 patches
    # -> 64 tokens; at 168 px the shapes (24-40 px across) were too few patches to tell apart
    "max_pixels": 50176,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor",
}

CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}"
    "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tokenizer():
    texts = []
    for i in range(6000):
        s = data.make_sample(TOKENIZER_SEED, i, draw=False)
        texts.append(data.render_chat(s["messages"]))
    # make sure every word of every template is seen
    texts += data.Q_DESCRIBE + data.Q_COUNT + data.Q_DIFF + data.Q_BOTH + data.GREET_Q + data.WHO_Q + data.CAN_Q + data.OTHER_Q
    texts += [data.GREET_A, data.WHO_A, data.CAN_A, data.OTHER_A, data.NO_IMAGE_A]
    return ByteBPE(train_bpe(texts, NUM_MERGES))


def make_config(tok, size):
    ids = {t: tok.token_id(t) for t in ["<|endoftext|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                                        "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]}
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "hidden_act": "silu",
        "hidden_size": size["text_hidden"],
        "initializer_range": 0.02,
        "intermediate_size": size["text_inner"],
        "max_position_embeddings": 4096,
        "max_window_layers": size["text_layers"],
        "num_attention_heads": size["text_heads"],
        "num_hidden_layers": size["text_layers"],
        "num_key_value_heads": size["text_kv_heads"],
        "rms_norm_eps": 1e-06,
        # A small theta so that the row/column (h/w) sections of M-RoPE, which get the lowest
        # frequencies, still separate the 8-16 rows and columns of a small picture.
        "rope_theta": 100.0,
        "sliding_window": 4096,
        "use_sliding_window": False,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.50.0",
        "use_cache": True,
        "vocab_size": len(tok),
        "rope_scaling": {"type": "mrope", "mrope_section": size["mrope_section"]},
        "vision_config": {
            "depth": size["vis_depth"],
            "hidden_act": "silu",
            "hidden_size": size["vis_hidden"],
            "intermediate_size": size["vis_inner"],
            "num_heads": size["vis_heads"],
            "in_chans": 3,
            "out_hidden_size": size["text_hidden"],
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "window_size": 112,
            "fullatt_block_indexes": [1, 3],
            "tokens_per_second": 2,
            "temporal_patch_size": 2,
        },
    }


SIZE = {
    "vis_hidden": 96, "vis_depth": 4, "vis_heads": 4, "vis_inner": 256,
    "text_hidden": 192, "text_layers": 4, "text_heads": 4, "text_kv_heads": 2, "text_inner": 512,
    "mrope_section": [4, 10, 10],  # sums to head_dim / 2 = 24
}


# ------------------------------------------------------------------ encoding

def encode_conversation(messages, images, tok, cfg, pp):
    """Token ids (image pads expanded), target mask (assistant answers + their <|im_end|>),
    pixel values and grids."""
    pvs, grids = [], []
    for im in images:
        pv, g = preprocess(im, pp)
        pvs.append(pv)
        grids.append(g)
    full = data.render_chat(messages)
    bounds = []
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            start = len(data.render_chat(messages[:i], add_generation_prompt=True))
            bounds.append((start, start + len(m["content"]) + len("<|im_end|>")))
    ids, tgt, pos = [], [], 0
    for a, b in bounds:
        for piece, is_t in ((full[pos:a], False), (full[a:b], True)):
            e = tok.encode(piece)
            ids += e
            tgt += [is_t] * len(e)
        pos = b
    e = tok.encode(full[pos:])
    ids += e
    tgt += [False] * len(e)
    # expand <|image_pad|>
    img_id, merge = cfg["image_token_id"], cfg["vision_config"]["spatial_merge_size"]
    out_ids, out_t, k = [], [], 0
    for t, m in zip(ids, tgt):
        if t == img_id:
            n = grids[k][0] * grids[k][1] * grids[k][2] // (merge * merge)
            out_ids += [t] * n
            out_t += [False] * n
            k += 1
        else:
            out_ids.append(t)
            out_t.append(m)
    assert k == len(grids)
    return out_ids, out_t, pvs, grids


def unit_labels(scene, grid):
    """Auxiliary targets for each merged 28 x 28 unit of a processed picture: the colour and the
    type of the shape covering the unit's centre (or holding its own centre in the unit), else
    background; and the cell of the 3 x 3 grid the unit lies in. Row-major over units, like the
    image embeddings of one picture."""
    _, gh, gw = grid
    uh, uw = gh // 2, gw // 2
    W, H = scene["size"]
    sx, sy = W / (gw * 14), H / (gh * 14)  # original pixels per processed pixel
    col = np.full((uh, uw), len(data.COLOUR_NAMES), np.int64)
    shp = np.full((uh, uw), len(data.SHAPES), np.int64)
    ys, xs = np.mgrid[0:uh, 0:uw]
    cx, cy = (xs + 0.5) * 28 * sx, (ys + 0.5) * 28 * sy
    for s in scene["shapes"]:
        m = np.hypot(cx - s["cx"], cy - s["cy"]) < 0.85 * s["r"]
        m[min(uh - 1, int(s["cy"] / (28 * sy))), min(uw - 1, int(s["cx"] / (28 * sx)))] = True
        col[m] = data.COLOUR_NAMES.index(s["colour"])
        shp[m] = data.SHAPES.index(s["shape"])
    cell = np.minimum(2, (3 * (ys + 0.5) / uh).astype(np.int64)) * 3 + np.minimum(2, (3 * (xs + 0.5) / uw).astype(np.int64))
    return col.reshape(-1), shp.reshape(-1), cell.reshape(-1)


def make_batch(samples, tok, cfg, pp):
    enc = [encode_conversation(s["messages"], s["images"], tok, cfg, pp) for s in samples]
    L = max(len(e[0]) for e in enc)
    B = len(enc)
    pad = cfg["pad_token_id"]
    ids = np.full((B, L), pad, np.int64)
    pos = np.zeros((3, B, L), np.int64)
    tgt = np.zeros((B, L), bool)
    pvs, grids = [], []
    merge = cfg["vision_config"]["spatial_merge_size"]
    for b, (i, t, pv, g) in enumerate(enc):
        ids[b, :len(i)] = i
        tgt[b, :len(t)] = t
        p, _ = rope_index(i, g, cfg["image_token_id"], merge)
        pos[:, b, :len(i)] = p
        pvs += pv
        grids += g
    aux_c, aux_s, aux_p = [], [], []
    for s, e in zip(samples, enc):
        for sc, g in zip(s["scenes"], e[3]):
            c, k, p = unit_labels(sc, g)
            aux_c.append(c)
            aux_s.append(k)
            aux_p.append(p)
    return {
        "ids": torch.from_numpy(ids), "pos": torch.from_numpy(pos), "tgt": torch.from_numpy(tgt),
        "pixels": torch.from_numpy(np.concatenate(pvs)) if pvs else None, "grids": grids,
        "aux_colour": torch.from_numpy(np.concatenate(aux_c)) if aux_c else None,
        "aux_shape": torch.from_numpy(np.concatenate(aux_s)) if aux_s else None,
        "aux_cell": torch.from_numpy(np.concatenate(aux_p)) if aux_p else None,
    }


# The decoder layer whose output the position probe reads.
POSITION_TAP = 1


class AuxHead(torch.nn.Module):
    """Training-only probes, not part of the exported model. One on the image embeddings: colour
    and shape type of each merged unit; it makes the vision tower learn what is where early on.
    One on the decoder's residual stream at the image tokens after layer POSITION_TAP: the 3 x 3
    cell of each unit. The vision tower cannot supply that: its attention sees only relative
    positions, so on a plain background every unit looks alike; the causal decoder can count
    its way to a unit's row and column, and this probe makes it do so early."""

    def __init__(self, dim):
        super().__init__()
        self.proj = torch.nn.Linear(dim, len(data.COLOUR_NAMES) + 1 + len(data.SHAPES) + 1)
        self.cell = torch.nn.Linear(dim, 9)

    def position_loss(self, h, cell):
        return torch.nn.functional.cross_entropy(self.cell(h), cell)

    def loss(self, emb, col, shp):
        o = self.proj(emb)
        nc = len(data.COLOUR_NAMES) + 1
        w = torch.where(col < len(data.COLOUR_NAMES), 3.0, 1.0)
        lc = (torch.nn.functional.cross_entropy(o[:, :nc], col, reduction="none") * w).sum() / w.sum()
        ls = (torch.nn.functional.cross_entropy(o[:, nc:], shp, reduction="none") * w).sum() / w.sum()
        return 0.5 * (lc + ls)


def loss_fn(model, batch, aux=None):
    emb = model.visual(batch["pixels"], batch["grids"]) if batch["grids"] else None
    aux_loss = aux.loss(emb, batch["aux_colour"], batch["aux_shape"]) if aux is not None and emb is not None else None
    x = model.embed(batch["ids"], emb)
    if aux_loss is not None:
        h, tapped = model.decoder(x, batch["pos"], tap=POSITION_TAP)
        aux_loss = aux_loss + aux.position_loss(tapped[batch["ids"] == model.cfg["image_token_id"]], batch["aux_cell"])
    else:
        h = model.decoder(x, batch["pos"])
    tgt = batch["tgt"][:, 1:]
    hs = h[:, :-1][tgt]
    labels = batch["ids"][:, 1:][tgt]
    logits = model.lm_head(hs)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    acc = (logits.argmax(-1) == labels).float().mean()
    return loss, acc, aux_loss


# ------------------------------------------------------------------ export

def export(model, cfg, tok, out, pp=PREPROCESSOR):
    os.makedirs(out, exist_ok=True)
    tok.save(out, CHAT_TEMPLATE)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(pp, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": cfg["bos_token_id"], "pad_token_id": cfg["pad_token_id"], "do_sample": False,
                   "eos_token_id": [cfg["eos_token_id"], cfg["bos_token_id"]]}, f, indent=2)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    write_safetensors(os.path.join(out, "model.safetensors"), sd, {"format": "pt"})


def folder_state_dict(folder):
    """The weights of an exported model folder, by their released names."""
    return {k: torch.from_numpy(v.copy()) for k, v in read_safetensors(os.path.join(folder, "model.safetensors")).items()}


def load_folder(folder):
    cfg = json.load(open(os.path.join(folder, "config.json")))
    pp = json.load(open(os.path.join(folder, "preprocessor_config.json")))
    tok = ByteBPE.load(folder)
    model = Qwen25VL(cfg)
    sd = folder_state_dict(folder)
    model.load_state_dict(sd, strict=True)
    model.eval()
    return model, cfg, pp, tok


def decoder_layers(sd):
    return 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("model.layers."))


def grow_decoder(model, sd):
    """Load sd into a model with at least as many decoder layers. Layers sd lacks keep their fresh
    weights except the two projections back into the residual stream, zeroed: each new layer starts
    as the identity, so the grown model begins exactly where sd left off."""
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, f"weights the model has no place for: {unexpected[:3]}"
    old = decoder_layers(sd)
    assert all(k.startswith("model.layers.") and int(k.split(".")[2]) >= old for k in missing), missing[:3]
    with torch.no_grad():
        for layer in model.model.layers[old:]:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    if missing:
        print(f"decoder grown from {old} to {len(model.model.layers)} layers", flush=True)


def load_init(source):
    """A training checkpoint (ckpt.pt) or an exported model folder, as a checkpoint-like dict.
    An exported folder has no optimizer or probe state and no record of the samples it saw, so
    training goes on with samples far past any earlier run's."""
    if not os.path.isdir(source):
        return torch.load(source)
    cfg = json.load(open(os.path.join(source, "config.json")))
    pp = json.load(open(os.path.join(source, "preprocessor_config.json")))
    sd = folder_state_dict(source)
    return {"model": sd, "aux": None, "step": 0, "elapsed": 0.0, "next_index": 10_000_000,
            "mrope_section": cfg["rope_scaling"]["mrope_section"], "pixels": [pp["min_pixels"], pp["max_pixels"]]}


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="models/iris-shapes-v1")
    ap.add_argument("--work", default="/tmp/iris-shapes-work")
    ap.add_argument("--steps", type=int, default=100000, help="upper bound on steps")
    ap.add_argument("--time-budget", type=float, default=3900, help="seconds of training; the cosine schedule follows elapsed time")
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="1 is faster than 2 when other jobs share the 2 cores")
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    ap.add_argument("--aux-weight", type=float, default=1.0, help="weight of the per-unit colour/shape probe loss (0: off)")
    ap.add_argument("--init-from", help="start from the model weights of this checkpoint or exported model folder (new optimizer, new schedule)")
    ap.add_argument("--mrope-section", help="M-RoPE sections t,h,w (sum 24); default: the checkpoint's, else SIZE's")
    ap.add_argument("--text-layers", type=int, help="decoder layers; more than the --init-from model's adds new ones on top, "
                    "their output projections zeroed so that the model starts out computing what it did")
    ap.add_argument("--min-pixels", type=int, help="image processor min_pixels (default: the checkpoint's, else PREPROCESSOR's)")
    ap.add_argument("--max-pixels", type=int, help="image processor max_pixels (default: the checkpoint's, else PREPROCESSOR's)")
    ap.add_argument("--varied", type=float, default=0.0,
                    help="share of conversations with pictures from data.make_varied_scene (other sizes, tints, edges, JPEG)")
    ap.add_argument("--mix", help="sample-type weights replacing data.MIX, e.g. describe=0.16,count=0.08,colour=0.19,...")
    args = ap.parse_args()
    if args.mix:
        data.MIX = [(k, float(w)) for k, w in (kv.split("=") for kv in args.mix.split(","))]
        assert abs(sum(w for _, w in data.MIX) - 1) < 1e-6, "--mix weights must sum to 1"
        print("mix", data.MIX, flush=True)
    ckpt = os.path.join(args.work, "ckpt.pt")
    resume = os.path.exists(ckpt) and not args.fresh
    # what training starts from, read once: this run's checkpoint, else --init-from, else nothing
    source = ckpt if resume else args.init_from
    start = load_init(source) if source else None
    # M-RoPE sections: the flag, else those the checkpoint was trained with, else SIZE's.
    if args.mrope_section:
        SIZE["mrope_section"] = [int(x) for x in args.mrope_section.split(",")]
    elif start and start.get("mrope_section"):
        SIZE["mrope_section"] = list(start["mrope_section"])
    if args.text_layers:
        SIZE["text_layers"] = args.text_layers
    elif start:
        SIZE["text_layers"] = decoder_layers(start["model"])
    assert sum(SIZE["mrope_section"]) == SIZE["text_hidden"] // SIZE["text_heads"] // 2, "M-RoPE sections must sum to head_dim / 2"
    print("mrope_section", SIZE["mrope_section"], flush=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    os.makedirs(args.work, exist_ok=True)

    tok_dir = os.path.join(args.work, "tokenizer")
    if os.path.exists(os.path.join(tok_dir, "tokenizer.json")):
        tok = ByteBPE.load(tok_dir)
    elif args.init_from and os.path.isdir(args.init_from):  # keep the exported model's vocabulary
        tok = ByteBPE.load(args.init_from)
        tok.save(tok_dir, CHAT_TEMPLATE)
    else:
        tok = build_tokenizer()
        tok.save(tok_dir, CHAT_TEMPLATE)
    cfg = make_config(tok, SIZE)
    # image size: the flags, else what the checkpoint was trained with, else PREPROCESSOR's
    pp = dict(PREPROCESSOR)
    if start and start.get("pixels"):
        pp["min_pixels"], pp["max_pixels"] = start["pixels"]
    if args.min_pixels:
        pp["min_pixels"] = args.min_pixels
    if args.max_pixels:
        pp["max_pixels"] = args.max_pixels
    print("pixels", pp["min_pixels"], pp["max_pixels"], flush=True)
    model = Qwen25VL(cfg)
    model.init_weights()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"vocab {len(tok)}  params {n_params:,}  ({n_params * 4 / 1e6:.1f} MB f32)", flush=True)

    aux = AuxHead(cfg["hidden_size"]) if args.aux_weight > 0 else None
    params = list(model.named_parameters()) + (list(aux.named_parameters()) if aux else [])
    decay = [p for n, p in params if p.dim() >= 2]
    no_decay = [p for n, p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-8)
    step, elapsed0, next_index0 = 0, 0.0, 0
    if resume:
        st = start
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        if aux is not None and "aux" in st:
            aux.load_state_dict(st["aux"])
        step, elapsed0, next_index0 = st["step"], st["elapsed"], st["next_index"]
        print(f"resumed at step {step}", flush=True)
    elif args.init_from:
        st = start
        grow_decoder(model, st["model"])
        if aux is not None and st.get("aux"):
            aux.load_state_dict(st["aux"], strict=False)  # an earlier run may lack the position probe
        # continue with fresh samples after the ones the earlier run used
        next_index0 = st["next_index"]
        print(f"initialised from {args.init_from} (step {st['step']}, {st['elapsed']:.0f}s)", flush=True)
    if args.export_only:
        export(model, cfg, tok, args.out, pp)
        print("exported", args.out)
        return

    def lr_at(s, elapsed):
        if s < args.warmup:
            return args.lr * (s + 1) / args.warmup
        p = elapsed / args.time_budget
        return args.lr * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))

    model.train()
    t0 = time.time() - elapsed0
    hist = []
    pool = []
    next_index = next_index0

    def save_checkpoint():
        """Everything a resumed run or an export needs; written aside and renamed, so a cut-off
        run never leaves half a file."""
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "elapsed": time.time() - t0, "next_index": next_index, "aux": aux.state_dict() if aux else None,
                    "mrope_section": SIZE["mrope_section"], "pixels": [pp["min_pixels"], pp["max_pixels"]]}, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)

    while step < args.steps and time.time() - t0 < args.time_budget:
        ts = time.time()
        if not pool:
            # 4 batches' worth of conversations, grouped by length so that little is padding
            group = [data.make_sample(TRAIN_SEED, next_index + j, draw=False, varied=args.varied) for j in range(4 * args.batch)]
            order = sorted(range(len(group)), key=lambda j: (len(group[j]["scenes"]), group[j]["kind"]))
            idx = [next_index + j for j in order]
            pool = [idx[i:i + args.batch] for i in range(0, len(idx), args.batch)]
            random.Random(next_index).shuffle(pool)
            next_index += 4 * args.batch
        samples = [data.make_sample(TRAIN_SEED, j, varied=args.varied) for j in pool.pop()]
        batch = make_batch(samples, tok, cfg, pp)
        td = time.time() - ts
        lr = lr_at(step, time.time() - t0)
        for g in opt.param_groups:
            g["lr"] = lr
        loss, acc, aux_loss = loss_fn(model, batch, aux)
        opt.zero_grad(set_to_none=True)
        (loss + args.aux_weight * aux_loss if aux_loss is not None else loss).backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        hist.append((loss.item(), acc.item(), aux_loss.item() if aux_loss is not None else 0.0))
        if step % 10 == 0 or step == 1:
            l = np.mean([h[0] for h in hist[-10:]])
            a = np.mean([h[1] for h in hist[-10:]])
            x = np.mean([h[2] for h in hist[-10:]])
            print(f"step {step} loss {l:.4f} tok_acc {a:.4f} aux {x:.4f} lr {lr:.2e} gnorm {gn:.2f} "
                  f"L {batch['ids'].shape[1]} data {td:.2f}s step {time.time() - ts:.2f}s elapsed {time.time() - t0:.0f}s", flush=True)
        if step % args.ckpt_every == 0:
            save_checkpoint()
    save_checkpoint()
    model.eval()
    export(model, cfg, tok, args.out, pp)
    print(f"done: {step} steps in {time.time() - t0:.0f}s; exported {args.out}", flush=True)


if __name__ == "__main__":
    main()
