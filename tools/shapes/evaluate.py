"""Accuracy of a running Iris server on fresh pictures of shapes.

  cd /work/main && npx tsc -p . && node dist/src/cli/main.js serve --model-path models/iris-shapes-v1 --port 0
  /usr/bin/python3 tools/shapes/evaluate.py --url http://127.0.0.1:PORT

or let it start (and stop) the server itself:

  /usr/bin/python3 tools/shapes/evaluate.py --start-server models/iris-shapes-v1

N pictures (default 200) are drawn with seed EVAL_SEED (never used in training: training uses
seed 1, the tokenizer seed 2, the fixtures seeds 4242 and 5151). For each picture the canonical
questions are asked (describe, count, colour of a shape, where a shape is, is there a ...),
for N/2 pairs the two-image questions, plus the text-only greetings; requests go to
POST /v1/chat/completions with the pictures as PNG data URIs and temperature 0.
Two-picture answers are also scored on whether each part is about its own picture
("right image"), besides the strict check of every shape and colour; the two descriptions inside
a difference answer are also scored on their own (two_image_diff_described).
"""
import argparse
import base64
import concurrent.futures as cf
import io
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402

EVAL_SEED = 9001

PAIR_RE = re.compile(r"\b(" + "|".join(data.COLOUR_NAMES) + r") (" + "|".join(data.SHAPES) + r")s?\b")


def pairs_in(text):
    return sorted(set(PAIR_RE.findall(text.lower())))


def data_uri(img):
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def openai_messages(images, text):
    content = [{"type": "image_url", "image_url": {"url": data_uri(im)}} for im in images]
    content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def chat(url, messages, max_tokens=data.MAX_ANSWER_TOKENS):
    body = json.dumps({"model": "iris", "messages": messages, "temperature": 0, "max_tokens": max_tokens}).encode()
    req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    for attempt in range(5):
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return json.loads(r.read())["choices"][0]["message"]["content"]
        except Exception as e:  # noqa: BLE001
            if attempt == 4:
                raise
            time.sleep(1 + attempt)
            err = e
    raise err


def build_items(n, seed, varied=False):
    """(category, images, question, expected, checker-info) for the whole evaluation; with `varied`,
    pictures as make_varied_scene draws them for training (any size, small to large shapes)."""
    items = []
    size = None if varied else (224, 224)
    for i in range(n):
        rng = random.Random(seed * 7919 + i)
        sc = data.make_scene(rng, size=size, varied=varied)
        img = data.render(sc, rng)
        truth = [(s["colour"], s["shape"]) for s in sc["shapes"]]
        items.append(("describe", [img], rng.choice(data.Q_DESCRIBE[:2]), data.describe(sc), {"pairs": sorted(truth)}))
        items.append(("count", [img], data.Q_COUNT[0], data.count_answer(sc), {"n": len(truth)}))
        s = rng.choice(sc["shapes"])
        items.append(("colour", [img], data.Q_COLOUR[0].format(s=s["shape"]), data.colour_answer(sc, s["shape"]), {}))
        s = rng.choice(sc["shapes"])
        items.append(("position", [img], data.Q_WHERE[0].format(c=s["colour"], s=s["shape"]),
                      data.where_answer(sc, s["colour"], s["shape"]), {}))
        if rng.random() < 0.5:
            s = rng.choice(sc["shapes"])
            c, k = s["colour"], s["shape"]
        else:
            c, k = data.pick_absent(rng, sc)
        items.append(("yesno", [img], data.Q_YESNO[0].format(a=data.article(c), c=c, s=k), data.yesno_answer(sc, c, k), {}))
        if i % 2 == 0:
            b_sc = sc if rng.random() < 0.12 else data.variant_scene(rng, sc)
            b_img = data.render(b_sc, rng)
            items.append(("two_image_diff", [img, b_img], data.Q_DIFF[0], data.diff_answer(sc, b_sc),
                          {"first": sorted((s["colour"], s["shape"]) for s in sc["shapes"]),
                           "second": sorted((s["colour"], s["shape"]) for s in b_sc["shapes"])}))
        else:
            b_sc = data.make_scene(rng, size=size, varied=varied)
            b_img = data.render(b_sc, rng)
            items.append(("two_image_describe", [img, b_img], data.Q_BOTH[0], data.both_answer(sc, b_sc),
                          {"first": sorted((s["colour"], s["shape"]) for s in sc["shapes"]),
                           "second": sorted((s["colour"], s["shape"]) for s in b_sc["shapes"])}))
    for q, a in [("Hello", data.GREET_A), ("Hi!", data.GREET_A), ("Who are you?", data.WHO_A), ("What can you do?", data.CAN_A)]:
        items.append(("text_only", [], q, a, {}))
    return items


COLOUR_ALT = "|".join(data.COLOUR_NAMES)
NOTED_RE = re.compile(r"\b(" + COLOUR_ALT + r") (" + "|".join(data.SHAPES) + r") \(([^)]*)\)")
WAS_RE = re.compile(r"^(" + COLOUR_ALT + r") in the first$")


def difference_parts(answer):
    """The shapes a difference answer says only the first / only the second picture has, read
    from the notes after the shapes: "(not in the second)" in the first picture's part; "(not in
    the first)" or "(blue in the first)" (then the first has the blue one) in the second's."""
    text = answer.lower()
    cut = text.find("the second image")
    if cut < 0:
        return set(), set()
    only_first, only_second = set(), set()
    for c, k, note in NOTED_RE.findall(text[:cut]):
        if note == "not in the second":
            only_first.add((c, k))
    for c, k, note in NOTED_RE.findall(text[cut:]):
        was = WAS_RE.match(note)
        if note == "not in the first" or was:
            only_second.add((c, k))
        if was:
            only_first.add((was.group(1), k))
    return only_first, only_second


def picture_parts(answer):
    """A two-picture answer cut before "The second image": [first part, second part], or None."""
    parts = answer.strip().split("The second image")
    return parts if len(parts) == 2 else None


def parts_described(answer, info):
    """The first part names exactly the first picture's shapes, the second exactly the second's
    (notes in parentheses are ignored)."""
    parts = picture_parts(answer)
    return parts is not None and pairs_in(parts[0]) == [tuple(p) for p in info["first"]] and \
        pairs_in(parts[1]) == [tuple(p) for p in info["second"]]


def correct(cat, answer, expected, info):
    a = answer.strip()
    if cat == "describe":  # every shape with its colour named, nothing else
        return pairs_in(a) == [tuple(p) for p in info["pairs"]]
    if cat == "count":
        m = re.search(r"\d+", a)
        return bool(m) and int(m.group()) == info["n"]
    if cat == "two_image_diff":
        if expected.endswith(data.SAME_A):
            return a.endswith(data.SAME_A) and difference_parts(a) == (set(), set())
        return difference_parts(a) == difference_parts(expected)
    if cat == "two_image_describe":
        return parts_described(a, info)
    if cat == "text_only":
        return "shapes" in a and "colours" in a
    return a == expected  # colour, position, yes/no: exact sentence


def right_image(cat, answer, expected, info):
    """Two-picture answers: is each part about its own picture? (None for other categories.)
    Describe both: each part names more shapes of its own picture than of the other one.
    Difference: the shapes said of each picture are in that picture, and differ (or, when the
    pictures are the same, the answer says so)."""
    a = answer.strip()
    first = {tuple(p) for p in info.get("first", [])}
    second = {tuple(p) for p in info.get("second", [])}
    if cat == "two_image_describe":
        parts = picture_parts(a)
        if parts is None:
            return False
        p0, p1 = set(pairs_in(parts[0])), set(pairs_in(parts[1]))
        about = lambda p, own, other: bool(p) and (len(p & own) > len(p & other) or p <= own)  # noqa: E731
        return about(p0, first, second) and about(p1, second, first)
    if cat == "two_image_diff":
        if expected.endswith(data.SAME_A):
            return a.endswith(data.SAME_A)
        p0, p1 = difference_parts(a)
        return bool(p0) and bool(p1) and p0 <= first and p1 <= second and p0 != p1
    return None


def start_server(model_path, root):
    proc = subprocess.Popen(["node", "dist/src/cli/main.js", "serve", "--model-path", model_path, "--port", "0"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        m = re.search(r"Iris is ready at (http://\S+)", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("server did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", help="base URL of a running Iris server")
    ap.add_argument("--start-server", metavar="MODEL_PATH", help="start `iris serve` on this model folder")
    ap.add_argument("--root", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=EVAL_SEED)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--varied", action="store_true", help="pictures drawn as the varied training pictures are")
    ap.add_argument("--dump", help="write every question, expected and actual answer to this JSON file")
    args = ap.parse_args()
    proc = None
    if args.start_server:
        proc, args.url = start_server(args.start_server, args.root)
        print("server", args.url, flush=True)
    try:
        items = build_items(args.n, args.seed, args.varied)
        t0 = time.time()
        with cf.ThreadPoolExecutor(args.concurrency) as ex:
            answers = list(ex.map(lambda it: chat(args.url, openai_messages(it[1], it[2])), items))
        took = time.time() - t0
    finally:
        if proc:
            proc.terminate()
            proc.wait()
    stats, rows = {}, []
    for (cat, _imgs, q, exp, info), ans in zip(items, answers):
        ok = correct(cat, ans, exp, info)
        exact = ans.strip() == exp
        right = right_image(cat, ans, exp, info)
        st = stats.setdefault(cat, [0, 0, 0, 0])
        st[0] += ok
        st[1] += exact
        st[2] += 1
        st[3] += bool(right)
        if cat == "two_image_diff":  # the descriptions inside a difference answer, scored on their own
            st = stats.setdefault("two_image_diff_described", [0, 0, 0, 0])
            st[0] += parts_described(ans, info)
            st[2] += 1
        rows.append({"category": cat, "question": q, "expected": exp, "answer": ans, "correct": ok, "exact": exact,
                     "right_image": right})
    print(f"{len(items)} requests in {took:.0f}s  (seed {args.seed}, {args.n} {'varied ' if args.varied else ''}pictures)")
    print(f"{'category':26s} {'correct':>8s} {'exact':>8s} {'n':>5s}  right image")
    for cat, (ok, ex_, n, right) in stats.items():
        extra = f"  {100 * right / n:7.1f}%" if cat in ("two_image_diff", "two_image_describe") else ""
        exact = "" if cat == "two_image_diff_described" else f"{100 * ex_ / n:7.1f}%"
        print(f"{cat:26s} {100 * ok / n:7.1f}% {exact:>8s} {n:5d}{extra}")
    if args.dump:
        with open(args.dump, "w") as f:
            json.dump({"stats": stats, "rows": rows}, f, indent=1)
    wrong = [r for r in rows if not r["correct"]]
    shown = {}
    for r in wrong:  # a few wrong answers of each category
        if shown.get(r["category"], 0) < 4:
            shown[r["category"]] = shown.get(r["category"], 0) + 1
            print("  WRONG", r["category"], "|", r["question"], "| expected:", r["expected"], "| got:", r["answer"])


if __name__ == "__main__":
    main()
