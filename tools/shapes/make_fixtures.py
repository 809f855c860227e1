"""Writes the test fixtures for the built-in model into test/fixtures/shapes/:

  reference.json + reference.safetensors + ref_*.png : three inputs (one picture, two pictures,
      text only) with the rendered prompt, input ids, image grids, 3-axis positions, the
      last-position logits (full vocabulary, float32) and 8 greedy tokens from this tool's
      PyTorch forward pass (float32, no KV cache: the whole sequence is recomputed each step).
  sample20.json + s20_*.png : 20 fixed questions (seed SAMPLE_SEED) with expected answers and a
      rule to check each.

  /usr/bin/python3 tools/shapes/make_fixtures.py --model models/iris-shapes-v1 --out test/fixtures/shapes
"""
import argparse
import hashlib
import json
import os
import random
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
from model import greedy, rope_index  # noqa: E402
from processor import preprocess, write_safetensors  # noqa: E402
from train import load_folder  # noqa: E402

REFERENCE_SEED = 5151
SAMPLE_SEED = 4242


def prepare(messages, images, tok, cfg, pp):
    prompt = data.render_chat(messages, add_generation_prompt=True)
    ids = tok.encode(prompt)
    pvs, grids = [], []
    for im in images:
        pv, g = preprocess(im, pp)
        pvs.append(pv)
        grids.append(g)
    out, k = [], 0
    for t in ids:
        if t == cfg["image_token_id"]:
            out += [t] * (grids[k][0] * grids[k][1] * grids[k][2] // 4)
            k += 1
        else:
            out.append(t)
    pv = np.concatenate(pvs) if pvs else None
    return prompt, out, pv, grids


def run(model, ids, pv, grids, n, stop=()):
    gen, logits = greedy(model, ids, torch.from_numpy(pv) if pv is not None else None, grids, n, stop)
    return gen, [l.numpy() for l in logits]


def openai_messages(messages, files):
    """The conversation as an OpenAI client sends it, pictures referenced by file name."""
    out, k = [], 0
    for m in messages:
        if isinstance(m["content"], str):
            out.append({"role": m["role"], "content": m["content"]})
            continue
        parts = []
        for c in m["content"]:
            if c["type"] == "image":
                parts.append({"type": "image_url", "image_url": {"url": files[k]}})
                k += 1
            else:
                parts.append({"type": "text", "text": c["text"]})
        out.append({"role": m["role"], "content": parts})
    return out


def reference_cases():
    rng = random.Random(REFERENCE_SEED)
    a = data.make_scene(rng, size=(230, 200), n=3)  # not a multiple of 28: exercises the bicubic resize
    a_img = data.render(a, rng)
    b = data.make_scene(rng, size=(224, 224), n=2)
    b2 = data.variant_scene(rng, b)
    b_img, b2_img = data.render(b, rng), data.render(b2, rng)
    user = lambda n, q: [{"role": "user", "content": [{"type": "image"}] * n + [{"type": "text", "text": q}]}]  # noqa: E731
    return [
        ("one_image", user(1, "What is in this image?"), [a_img], data.describe(a)),
        ("two_images", user(2, "What is different between the two images?"), [b_img, b2_img], data.diff_answer(b, b2)),
        ("text_only", [{"role": "user", "content": "Hello"}], [], data.GREET_A),
    ]


def sample20_items():
    """20 questions: 4 describe, 3 count, 3 colour, 2 position, 3 yes/no, 2 difference,
    1 describe-both, 2 text-only."""
    plan = ["describe"] * 4 + ["count"] * 3 + ["colour"] * 3 + ["where"] * 2 + ["yesno"] * 3
    items = []
    for i, kind in enumerate(plan):
        rng = random.Random(SAMPLE_SEED * 7919 + i)
        sc = data.make_scene(rng, size=rng.choice([(224, 224), (168, 168), (280, 280), (256, 200)]))
        img = data.render(sc, rng)
        if kind == "yesno":
            if i % 2 == 0:
                s = rng.choice(sc["shapes"])
                c, k = s["colour"], s["shape"]
            else:
                c, k = data.pick_absent(rng, sc)
            q, a = data.Q_YESNO[0].format(a=data.article(c), c=c, s=k), data.yesno_answer(sc, c, k)
        else:
            q, a, _ = data.question(rng, kind, sc, canonical=True)
        if kind == "describe":
            check = {"type": "contains_all", "keywords": [f"{s['colour']} {s['shape']}" for s in sc["shapes"]],
                     "note": "every shape with its colour, in any order; the exact sentence lists them in a fixed shape order"}
        elif kind == "count":
            check = {"type": "contains_all", "keywords": [str(len(sc["shapes"]))]}
        else:
            check = {"type": "exact"}
        items.append({"category": {"where": "position"}.get(kind, kind), "scenes": [sc], "images": [img], "question": q,
                      "expected": a, "check": check})
    for i in range(3):
        rng = random.Random(SAMPLE_SEED * 7919 + 100 + i)
        sc = data.make_scene(rng, size=(224, 224))
        if i < 2:
            sc2 = data.variant_scene(rng, sc)
            q, a = data.Q_DIFF[0], data.diff_answer(sc, sc2)
            first, second = data.diff_notes(sc, sc2)
            noted = [data.noted_phrase(*x) for x in first + second if x[2]]
            check = {"type": "contains_all", "keywords": noted or [data.SAME_A],
                     "note": "the difference itself: each shape that differs, with its note; 'first' and 'second' "
                             "are each picture's shapes, which the answer describes in turn"}
            cat = "two_image_diff"
        else:
            sc2 = data.make_scene(rng, size=(224, 224))
            q, a = data.Q_BOTH[0], data.both_answer(sc, sc2)
            check = {"type": "contains_all", "keywords": [f"{s['colour']} {s['shape']}" for s in sc["shapes"] + sc2["shapes"]],
                     "note": "the exact sentence also puts each shape under the right image"}
            cat = "two_image_describe"
        check["first"] = [f"{s['colour']} {s['shape']}" for s in sc["shapes"]]
        check["second"] = [f"{s['colour']} {s['shape']}" for s in sc2["shapes"]]
        items.append({"category": cat, "scenes": [sc, sc2], "images": [data.render(sc, rng), data.render(sc2, rng)],
                      "question": q, "expected": a, "check": check})
    for q, a in [("Hello", data.GREET_A), ("What can you do?", data.CAN_A)]:
        items.append({"category": "text_only", "scenes": [], "images": [], "question": q, "expected": a,
                      "check": {"type": "contains_all", "keywords": ["shapes", "colours"]}})
    return items


def passes(answer, check, expected):
    a = answer.strip()
    if check["type"] == "exact":
        return a == expected
    if check["type"] == "contains_all":
        return all(k.lower() in a.lower() for k in check["keywords"])
    raise ValueError(check)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/iris-shapes-v1")
    ap.add_argument("--out", default="test/fixtures/shapes")
    ap.add_argument("--iris", action="store_true",
                    help="also ask the 20 questions through `iris serve` (started here) and record its answers")
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    model, cfg, pp, tok = load_folder(args.model)
    eos = {cfg["eos_token_id"], tok.token_id("<|endoftext|>")}

    cases, tensors = [], {}
    for name, messages, images, expected in reference_cases():
        files = [f"ref_{name}_{k}.png" for k in range(len(images))]
        for f, im in zip(files, images):
            im.save(os.path.join(args.out, f))
        prompt, ids, pv, grids = prepare(messages, images, tok, cfg, pp)
        pos, delta = rope_index(ids, grids, cfg["image_token_id"], 2)
        gen, logits = run(model, ids, pv, grids, 8)
        margins = [float(np.sort(l)[-1] - np.sort(l)[-2]) for l in logits]
        until_eos = []
        for t in gen:
            until_eos.append(t)
            if t in eos:
                break
        tensors[f"{name}.logits_last"] = logits[0].astype(np.float32)
        tensors[f"{name}.generate_step_logits"] = np.stack(logits).astype(np.float32)
        if pv is not None:
            with torch.no_grad():
                tensors[f"{name}.image_embeds"] = model.visual(torch.from_numpy(pv), grids).numpy()
        cases.append({
            "name": name,
            "messages": openai_messages(messages, files),
            "image_files": files,
            "image_sizes_wh": [list(im.size) for im in images],
            "prompt": prompt,
            "input_ids": ids,
            "image_grid_thw": [list(g) for g in grids],
            "num_image_tokens": [g[1] * g[2] // 4 for g in grids],
            "pixel_values_sha256_f32le": hashlib.sha256(pv.astype("<f4").tobytes()).hexdigest() if pv is not None else None,
            "pixel_values_shape": list(pv.shape) if pv is not None else None,
            "position_ids": pos.tolist(),
            "rope_delta": int(delta),
            "logits_last_argmax": int(np.argmax(logits[0])),
            "logprobs_last_top5": sorted(
                [[int(i), float(v)] for i, v in enumerate(torch.log_softmax(torch.from_numpy(logits[0]).double(), -1).numpy())],
                key=lambda x: -x[1])[:5],
            "generated_ids": gen,
            "generated_ids_until_eos": until_eos,
            "generated_text_until_eos": tok.decode(until_eos, skip_special=True),
            "generate_step_top1_margin": margins,
            "expected_answer": expected,
        })
        print(name, len(ids), grids, repr(tok.decode(until_eos)), "min margin %.3f" % min(margins))
    write_safetensors(os.path.join(args.out, "reference.safetensors"), tensors)
    ref = {
        "description": "Reference outputs of models/iris-shapes-v1 from the training tool's PyTorch forward pass "
                       "(tools/shapes/model.py, float32, greedy, no KV cache). Logits are in reference.safetensors "
                       "as '<case>.logits_last' (the last prompt position, full vocabulary) and "
                       "'<case>.generate_step_logits' (the logits behind each of the 8 greedy tokens; EOS is not a stop "
                       "there). Compare logits within 1e-4.",
        "model": "models/iris-shapes-v1",
        "eos_token_ids": sorted(eos),
        "cases": cases,
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)

    items = sample20_items()
    out = []
    for i, it in enumerate(items):
        files = [f"s20_{i:02d}_{k}.png" for k in range(len(it["images"]))]
        for f, im in zip(files, it["images"]):
            im.save(os.path.join(args.out, f))
        msgs = [{"role": "user", "content": ([{"type": "image"}] * len(files) + [{"type": "text", "text": it["question"]}])
                 if files else it["question"]}]
        prompt, ids, pv, grids = prepare(msgs, it["images"], tok, cfg, pp)
        gen, _ = run(model, ids, pv, grids, data.MAX_ANSWER_TOKENS, eos)
        ans = tok.decode(gen, skip_special=True)
        out.append({
            "id": i,
            "category": it["category"],
            "images": files,
            "question": it["question"],
            "messages": openai_messages(msgs, files),
            "expected": it["expected"],
            "check": it["check"],
            "pytorch_greedy_answer": ans,
            "pytorch_matches_expected": ans == it["expected"],
        })
        print(i, it["category"], "|", it["question"], "|", it["expected"], "|", ans)
    if args.iris:
        import evaluate
        proc, url = evaluate.start_server(args.model, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
        try:
            for it, o in zip(items, out):
                ans = evaluate.chat(url, evaluate.openai_messages(it["images"], it["question"]) if it["images"]
                                    else [{"role": "user", "content": it["question"]}])
                o["iris_answer"] = ans
                o["iris_passes"] = passes(ans, o["check"], o["expected"])
                print("iris", o["id"], o["iris_passes"], "|", ans)
        finally:
            proc.terminate()
            proc.wait()
        print("iris passes", sum(o["iris_passes"] for o in out), "of", len(out))
    with open(os.path.join(args.out, "sample20.json"), "w") as f:
        json.dump({
            "description": "20 fixed questions for models/iris-shapes-v1 (pictures drawn with seed 4242 by tools/shapes/data.py), "
                           "sent as OpenAI chat messages (pictures as PNG data URIs in place of the file names, the text after "
                           "the pictures), temperature 0. 'expected' is the exact answer the generator defines; 'check' says how to "
                           "judge an answer: exact (the whole answer, trimmed), contains_all (every keyword, case-insensitive). "
                           "'pytorch_greedy_answer' is what the training tool's own forward pass answers, "
                           "generating at most 'max_tokens' tokens.",
            "max_tokens": data.MAX_ANSWER_TOKENS,
            "items": out,
        }, f, indent=1)


if __name__ == "__main__":
    main()
