"""Generated pictures of shapes, with deterministic questions and answers.

Everything is controlled by seeds: `make_scene(random.Random(seed))` always draws the
same picture, and `make_sample(seed, index)` always gives the same conversation.

Position rule: the picture is cut into a 3x3 grid of equal cells. A shape's position is
the cell holding its centre: column = floor(3 * cx / width), row = floor(3 * cy / height)
(0 = left/top). Cell names: top left, top, top right, left, centre, right, bottom left,
bottom, bottom right. The generator puts each shape's centre well inside one cell
(at most 12% of a cell away from the cell's middle), and no two shapes in one cell, so
the answer is never borderline.

Order rule: descriptions list shapes in the fixed order of SHAPES below
(circle, square, triangle, star, diamond, hexagon, cross, heart), not by place.
Within one picture every shape type appears at most once.
"""
import colorsys
import io
import math
import random

from PIL import Image, ImageDraw, ImageFilter

SHAPES = ["circle", "square", "triangle", "star", "diamond", "hexagon", "cross", "heart"]

COLOURS = {
    "red": (215, 30, 35),
    "green": (35, 155, 55),
    "blue": (35, 75, 215),
    "yellow": (240, 205, 25),
    "orange": (245, 130, 25),
    "purple": (125, 45, 175),
    "pink": (245, 125, 190),
    "brown": (125, 75, 35),
    "black": (25, 25, 25),
    "grey": (130, 130, 130),
}
COLOUR_NAMES = list(COLOURS)

BACKGROUNDS = [
    (255, 255, 255),  # white
    (246, 241, 230),  # cream
    (226, 226, 226),  # light grey
    (222, 235, 249),  # pale blue
    (226, 244, 226),  # pale green
    (250, 245, 214),  # pale yellow
]

CELL_NAMES = [
    ["top left", "top", "top right"],
    ["left", "centre", "right"],
    ["bottom left", "bottom", "bottom right"],
]
# How the answer phrases each cell: "The red circle is on the left."
CELL_PHRASES = {
    "top left": "at the top left", "top": "at the top", "top right": "at the top right",
    "left": "on the left", "centre": "in the centre", "right": "on the right",
    "bottom left": "at the bottom left", "bottom": "at the bottom", "bottom right": "at the bottom right",
}

SYSTEM_PROMPT = "You are a helpful assistant."
CAPABILITY = "I can describe simple shapes and colours in pictures."
IDENTITY = "I am Iris's tiny demo model."

# Canonical questions (used by the evaluation and the fixtures) come first in each list;
# the others are paraphrases seen in training only.
Q_DESCRIBE = ["What is in this image?", "Describe the image.", "What do you see?", "Describe this picture.",
              "What shapes are in the picture?", "What is in the picture?", "What's in this image?"]
Q_COUNT = ["How many shapes are there?", "How many shapes are in the image?", "Count the shapes.",
           "How many shapes are in the picture?", "How many shapes do you see?"]
Q_COLOUR = ["What colour is the {s}?", "What color is the {s}?", "Which colour is the {s}?"]
Q_WHERE = ["Where is the {c} {s}?", "Where is the {c} {s} in the picture?"]
Q_YESNO = ["Is there {a} {c} {s}?", "Is there {a} {c} {s} in the picture?"]
Q_DIFF = ["What is different between the two images?", "What is the difference between the two images?",
          "What changed between the two pictures?"]
Q_BOTH = ["Describe both images.", "What is in the two images?", "Describe the two pictures."]

GREET_Q = ["Hello", "Hello!", "Hi", "Hi!", "Hey", "Hey!", "Hello there", "Good morning", "Good evening", "Hi there!"]
WHO_Q = ["Who are you?", "What are you?", "Who are you", "What is your name?", "Introduce yourself."]
CAN_Q = ["What can you do?", "What can you do", "How can you help me?", "Help", "What do you do?"]
OTHER_Q = ["What is the capital of France?", "Tell me a joke.", "What is 2 + 2?", "Write a poem.",
           "What is the weather today?", "Translate hello into French.", "Who won the match?"]
GREET_A = f"Hello! {IDENTITY} {CAPABILITY}"
WHO_A = f"{IDENTITY} {CAPABILITY}"
CAN_A = f"{CAPABILITY} Send me a picture and ask what is in it, how many shapes there are, what colour or where a shape is."
OTHER_A = "Sorry, I only know about simple shapes and colours in pictures. Send me a picture and ask me about it."
NO_IMAGE_A = "Please send me a picture of shapes and I will describe it."


def article(word):
    return "an" if word[0] in "aeiou" else "a"


def phrase(colour, shape):
    return f"{article(colour)} {colour} {shape}"


def join_list(items):
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------- drawing

# How far each type may turn in varied pictures (degrees): a square turned 45 degrees would be a
# diamond and a cross an X, so those turn a little; a circle, star or hexagon is the same shape at any angle.
TURN_LIMIT = {"circle": 0, "square": 15, "triangle": 15, "star": 180, "diamond": 15, "hexagon": 180, "cross": 15, "heart": 15}


def varied_polygon(kind, cx, cy, r, form, turn):
    """shape_polygon with the proportions moved a little (form in [0, 1]) and turned by
    turn * TURN_LIMIT degrees: a star's inner radius, a cross's arm width, a diamond's width and a
    triangle's height vary between drawings, so no one set of proportions is learnt as the shape."""
    if kind == "star":
        pts = []
        inner = r * (0.38 + 0.14 * form)
        for i in range(10):
            rr = r if i % 2 == 0 else inner
            ang = -math.pi / 2 + math.pi / 5 * i
            pts.append((cx + rr * math.cos(ang), cy + rr * math.sin(ang)))
    elif kind == "cross":
        a, b = r * 0.9, r * (0.24 + 0.16 * form)
        pts = [(cx - b, cy - a), (cx + b, cy - a), (cx + b, cy - b), (cx + a, cy - b), (cx + a, cy + b), (cx + b, cy + b),
               (cx + b, cy + a), (cx - b, cy + a), (cx - b, cy + b), (cx - a, cy + b), (cx - a, cy - b), (cx - b, cy - b)]
    elif kind == "diamond":
        w = r * (0.6 + 0.25 * form)
        pts = [(cx, cy - r), (cx + w, cy), (cx, cy + r), (cx - w, cy)]
    elif kind == "triangle":
        h = r * (0.8 + 0.2 * form)
        pts = [(cx, cy - h), (cx + r, cy + h * 0.8), (cx - r, cy + h * 0.8)]
    elif kind == "square":
        a = r * (0.78 + 0.1 * form)
        pts = [(cx - a, cy - a), (cx + a, cy - a), (cx + a, cy + a), (cx - a, cy + a)]
    elif kind == "hexagon":
        w = 0.9 + 0.2 * form
        pts = [(cx + w * r * math.cos(math.pi / 3 * i), cy + r * math.sin(math.pi / 3 * i)) for i in range(6)]
    elif kind == "heart":
        pts = heart_outline(cx, cy, r, lobes=form, notch=(form * 7.31) % 1)
    else:
        pts = shape_polygon(kind, cx, cy, r)
    # a second draw from form, independent enough of the first: rounded corners on some shapes
    # (a square with rounded corners is still a square)
    corner = (form * 13.7) % 1
    if kind in ROUNDABLE and corner > 0.55:
        pts = round_corners(pts, r * ROUNDABLE[kind] * (corner - 0.55) / 0.45)
    ang = math.radians(turn * TURN_LIMIT[kind])
    ca, sa = math.cos(ang), math.sin(ang)
    return [(cx + (x - cx) * ca - (y - cy) * sa, cy + (x - cx) * sa + (y - cy) * ca) for x, y in pts]


# The largest corner radius (times the shape's r) each type may get in varied pictures; a star's points
# and a heart's tip stay sharp, and circles have no corners.
ROUNDABLE = {"square": 0.3, "triangle": 0.18, "diamond": 0.15, "hexagon": 0.12, "cross": 0.12}


def round_corners(pts, rad, steps=5):
    """The polygon with every corner replaced by a quadratic curve that starts and ends up to rad
    along its two edges (at most a third of each edge), convex and concave corners alike."""
    out = []
    n = len(pts)
    for i in range(n):
        p, a, b = pts[i], pts[i - 1], pts[(i + 1) % n]
        la, lb = math.dist(p, a), math.dist(p, b)
        t = min(rad, la / 3, lb / 3)
        s = (p[0] + (a[0] - p[0]) * t / la, p[1] + (a[1] - p[1]) * t / la)
        e = (p[0] + (b[0] - p[0]) * t / lb, p[1] + (b[1] - p[1]) * t / lb)
        for k in range(steps + 1):
            u = k / steps
            out.append(((1 - u) ** 2 * s[0] + 2 * u * (1 - u) * p[0] + u * u * e[0],
                        (1 - u) ** 2 * s[1] + 2 * u * (1 - u) * p[1] + u * u * e[1]))
    return out


def heart_outline(cx, cy, r, lobes, notch):
    """A heart whose lobes are fuller or thinner (lobes in [0, 1]) and whose top notch is deeper or
    shallower (notch in [0, 1]) than shape_polygon's, fitted to the same width."""
    power = 3 - 1.2 * lobes  # sin^p: a smaller power gives rounder, fuller lobes
    dip = 5 * (0.6 + 0.8 * notch)
    raw = []
    for i in range(64):
        t = 2 * math.pi * i / 64
        st = math.sin(t)
        x = 16 * math.copysign(abs(st) ** power, st)
        y = 13 * math.cos(t) - dip * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        raw.append((x, y))
    ys = [y for _, y in raw]
    mid = (max(ys) + min(ys)) / 2
    k = r / 16.5
    return [(cx + x * k, cy - (y - mid) * k) for x, y in raw]


def shape_polygon(kind, cx, cy, r):
    """Outline points of a shape of 'radius' r (half its width) centred at (cx, cy)."""
    if kind == "square":
        a = r * 0.86
        return [(cx - a, cy - a), (cx + a, cy - a), (cx + a, cy + a), (cx - a, cy + a)]
    if kind == "triangle":
        h = r * 0.95
        return [(cx, cy - h), (cx + r, cy + h * 0.8), (cx - r, cy + h * 0.8)]
    if kind == "diamond":
        return [(cx, cy - r), (cx + r * 0.75, cy), (cx, cy + r), (cx - r * 0.75, cy)]
    if kind == "hexagon":
        return [(cx + r * math.cos(math.pi / 3 * i), cy + r * math.sin(math.pi / 3 * i)) for i in range(6)]
    if kind == "star":
        pts = []
        for i in range(10):
            rr = r if i % 2 == 0 else r * 0.45
            ang = -math.pi / 2 + math.pi / 5 * i
            pts.append((cx + rr * math.cos(ang), cy + rr * math.sin(ang)))
        return pts
    if kind == "cross":
        a, b = r * 0.9, r * 0.32
        return [(cx - b, cy - a), (cx + b, cy - a), (cx + b, cy - b), (cx + a, cy - b), (cx + a, cy + b), (cx + b, cy + b),
                (cx + b, cy + a), (cx - b, cy + a), (cx - b, cy + b), (cx - a, cy + b), (cx - a, cy - b), (cx - b, cy - b)]
    if kind == "heart":
        pts = []
        for i in range(48):
            t = 2 * math.pi * i / 48
            x = 16 * math.sin(t) ** 3
            y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
            pts.append((cx + x / 17 * r, cy - (y + 2.5) / 17 * r))
        return pts
    raise ValueError(kind)


def jitter_colour(rng, rgb, amount=14):
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def render(scene, rng):
    """Draws a scene (dict from make_scene) into an RGB PIL image."""
    W, H = scene["size"]
    # draw at 2x, then downsample: smooth edges; varied pictures also use 1x (hard, aliased edges) to 4x
    ss = scene.get("supersample", 2)
    bg = jitter_colour(rng, scene["background"], 6)
    img = Image.new("RGB", (W * ss, H * ss), bg)
    d = ImageDraw.Draw(img)
    if scene["texture"] == "gradient":
        # a gentle vertical or horizontal brightness ramp
        vertical = rng.random() < 0.5
        n = H * ss if vertical else W * ss
        amp = rng.randint(8, 22)
        for i in range(n):
            f = amp * (i / n - 0.5)
            c = tuple(max(0, min(255, int(round(v + f)))) for v in bg)
            if vertical:
                d.line([(0, i), (W * ss, i)], fill=c)
            else:
                d.line([(i, 0), (i, H * ss)], fill=c)
    for s in scene["shapes"]:
        col = jitter_colour(rng, COLOURS[s["colour"]], scene.get("colour_jitter", 14))
        cx, cy, r = s["cx"] * ss, s["cy"] * ss, s["r"] * ss
        # (darkness, width in output pixels, grey): a rim of the shape's own colour made darker, or,
        # when grey is set, a near-black pen line as people draw round shapes
        line = s.get("outline")
        rim = None if not line else (
            tuple(int(c * line[0]) for c in col) if line[2] is None else (line[2],) * 3,
            max(1, round(line[1] * ss)))
        if s["shape"] == "circle":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=col, outline=rim and rim[0], width=rim[1] if rim else 1)
        else:
            pts = (varied_polygon(s["shape"], cx, cy, r, s["form"], s["turn"]) if "form" in s
                   else shape_polygon(s["shape"], cx, cy, r))
            d.polygon(pts, fill=col)
            if rim:
                d.line(pts + pts[:1], fill=rim[0], width=rim[1], joint="curve")
    img = img.resize((W, H), Image.BOX) if ss > 1 else img
    if scene["texture"] == "noise":
        img = add_noise(img, rng, scene["noise"])
    elif scene["texture"] == "blur":
        img = img.filter(ImageFilter.GaussianBlur(0.8))
    if scene.get("jpeg"):  # compression blocks and ringing around the edges
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=scene["jpeg"])
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return img


def add_noise(img, rng, amount):
    import numpy as np
    nrng = np.random.default_rng(rng.getrandbits(32))
    a = np.asarray(img).astype(np.int16)
    a = a + nrng.integers(-amount, amount + 1, size=a.shape, dtype=np.int16)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")


# ---------------------------------------------------------------- scenes

# The image processor (max_pixels 50176) keeps square pictures up to 224 px (224 x 224: 16 x 16 patches,
# 64 image tokens) and brings larger ones down to that size with its bicubic resize.
TRAIN_SIZES = [(168, 168)] * 8 + [(224, 224)] * 5 + [(196, 196), (252, 252), (280, 280), (140, 168), (168, 140),
                                                      (224, 168), (168, 224), (320, 240), (240, 320)]


def random_size(rng, varied=False):
    if varied:  # width and height apart: wide and tall pictures up to 5:2
        return (rng.randint(160, 400), rng.randint(160, 400))
    if rng.random() < 0.2:  # any size
        return (rng.randint(130, 400), rng.randint(130, 400))
    return rng.choice(TRAIN_SIZES)


def processed_scale(W, H):
    """How much the image processor (max_pixels 50176, min_pixels 12544) scales a W x H picture."""
    from processor import smart_resize
    h, w = smart_resize(H, W, 28, 12544, 50176)
    return min(w / W, h / H)


def tinted_background(rng):
    """A pale background of any hue, or one of BACKGROUNDS; never close to a shape colour."""
    if rng.random() < 0.3:
        return rng.choice(BACKGROUNDS)
    while True:
        rgb = tuple(round(255 * c) for c in colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.03, 0.3), rng.uniform(0.8, 1.0)))
        if min(math.dist(rgb, c) for c in COLOURS.values()) > 100:
            return rgb


def make_varied_scene(rng, size=None, n=None):
    """A picture drawn less like the others: any width and height from 160 to 400 px, tinted
    backgrounds, shapes from small (18 px across after the image processor's resize) to large,
    slightly turned and reshaped, some with a darker or near-black rim, aliased or smooth edges, some JPEG
    compressed, shapes anywhere in their cell but its outer sixth (the position rule still holds,
    with a smaller margin than make_scene's)."""
    W, H = size or random_size(rng, True)
    n = n or rng.choice([1, 1, 2, 2, 2, 3, 3, 3, 4, 4])
    cw, ch = W / 3, H / 3
    short = min(cw, ch)
    r_min = 9 / processed_scale(W, H)  # 9 px radius after the resize: about 1.3 patches across
    # up to 0.43 of the short side for one shape, filling most of the picture; a shape that
    # spreads over several cells must still count once
    r_max = short * {1: 1.3, 2: 0.9}.get(n, 0.65)
    outline = rng.random() < 0.35
    grey_rim = rng.randint(15, 75) if outline and rng.random() < 0.5 else None
    # only a shape in the centre cell has room to be large; give lone shapes that cell more often
    centred = n == 1 and rng.random() < 0.4
    for _attempt in range(100):
        cells = [4] if centred else rng.sample(range(9), n)
        kinds = rng.sample(SHAPES, n)
        shapes = []
        for cell, kind in zip(cells, kinds):
            row, col = divmod(cell, 3)
            # anywhere in the cell but its outer sixth: shapes near the picture's edges too
            cx = (col + 0.5 + rng.uniform(-0.33, 0.33)) * cw
            cy = (row + 0.5 + rng.uniform(-0.33, 0.33)) * ch
            edge = min(cx, cy, W - cx, H - cy) / 1.25 - 2  # a turned square reaches 1.22 r from its centre
            # a quarter of the shapes drawn from the small end, where shapes are hardest to tell apart
            small = rng.random() < 0.25
            lo, hi = (0.0, 0.2 * short) if small else (0.16 * short, max(r_max, 0.17 * short))
            r = max(r_min, min(edge, rng.uniform(max(lo, r_min), max(hi, r_min))))
            s = {"shape": kind, "colour": rng.choice(COLOUR_NAMES), "cx": cx, "cy": cy, "r": r,
                 "cell": CELL_NAMES[row][col], "form": rng.random(), "turn": rng.uniform(-1, 1)}
            if outline:
                s["outline"] = (rng.uniform(0.35, 0.7), rng.uniform(1, 3 if grey_rim else 2.5), grey_rim)
            shapes.append(s)
        ok = all(math.hypot(a["cx"] - b["cx"], a["cy"] - b["cy"]) > 1.25 * (a["r"] + b["r"]) + 3
                 for i, a in enumerate(shapes) for b in shapes[i + 1:])
        if ok:
            break
        r_max *= 0.97  # crowded: try smaller shapes
    shapes.sort(key=lambda s: SHAPES.index(s["shape"]))
    return {"size": (W, H), "background": tinted_background(rng),
            "texture": rng.choice(["plain", "plain", "noise", "noise", "gradient", "blur"]),
            "noise": rng.randint(3, 12), "shapes": shapes, "supersample": rng.choice([1, 1, 2, 3, 4]),
            "colour_jitter": 20, "jpeg": rng.randint(30, 90) if rng.random() < 0.3 else None}


def make_scene(rng, size=None, n=None, varied=False):
    if varied:
        return make_varied_scene(rng, size, n)
    W, H = size or random_size(rng)
    n = n or rng.choice([1, 1, 2, 2, 2, 3, 3, 3, 4, 4])
    bg = rng.choice(BACKGROUNDS)
    texture = rng.choice(["plain", "plain", "noise", "noise", "gradient", "blur"])
    for _attempt in range(100):
        cells = rng.sample(range(9), n)
        kinds = rng.sample(SHAPES, n)
        shapes = []
        cw, ch = W / 3, H / 3
        for cell, kind in zip(cells, kinds):
            row, col = divmod(cell, 3)
            r = rng.uniform(0.22, 0.37) * min(cw, ch)
            cx = (col + 0.5 + rng.uniform(-0.12, 0.12)) * cw
            cy = (row + 0.5 + rng.uniform(-0.12, 0.12)) * ch
            shapes.append({"shape": kind, "colour": rng.choice(COLOUR_NAMES), "cx": cx, "cy": cy, "r": r,
                           "cell": CELL_NAMES[row][col]})
        ok = all(math.hypot(a["cx"] - b["cx"], a["cy"] - b["cy"]) > a["r"] + b["r"] + 3
                 for i, a in enumerate(shapes) for b in shapes[i + 1:])
        if ok:
            break
    shapes.sort(key=lambda s: SHAPES.index(s["shape"]))
    return {"size": (W, H), "background": bg, "texture": texture, "noise": rng.randint(3, 12), "shapes": shapes}


def variant_scene(rng, scene):
    """The same picture with exactly one shape changed (its colour, its type or both)."""
    new = {**scene, "shapes": [dict(s) for s in scene["shapes"]]}
    i = rng.randrange(len(new["shapes"]))
    s = new["shapes"][i]
    used = {t["shape"] for t in new["shapes"]}
    mode = rng.choice(["colour", "shape", "both"])
    if mode in ("shape", "both"):
        s["shape"] = rng.choice([k for k in SHAPES if k not in used])
    if mode in ("colour", "both"):
        s["colour"] = rng.choice([c for c in COLOUR_NAMES if c != s["colour"]])
    new["shapes"].sort(key=lambda t: SHAPES.index(t["shape"]))
    return new


# ---------------------------------------------------------------- answers

def describe(scene):
    items = [phrase(s["colour"], s["shape"]) for s in scene["shapes"]]
    text = join_list(items)
    return text[0].upper() + text[1:] + "."


def count_answer(scene):
    n = len(scene["shapes"])
    return "There is 1 shape." if n == 1 else f"There are {n} shapes."


def colour_answer(scene, kind):
    for s in scene["shapes"]:
        if s["shape"] == kind:
            return f"The {kind} is {s['colour']}."
    return f"There is no {kind}."


def where_answer(scene, colour, kind):
    for s in scene["shapes"]:
        if s["shape"] == kind and s["colour"] == colour:
            return f"The {colour} {kind} is {CELL_PHRASES[s['cell']]}."
    return f"There is no {colour} {kind}."


def yesno_answer(scene, colour, kind):
    """The shape of that type is looked up and named first, then compared with the colour asked
    about: "There is a blue square." / "There is a red square, but no blue square." / "There is no
    square." A leading "Yes" or "No" would ask for the lookup and the comparison in one token."""
    for s in scene["shapes"]:
        if s["shape"] == kind:
            if s["colour"] == colour:
                return f"There is {phrase(colour, kind)}."
            return f"There is {phrase(s['colour'], kind)}, but no {colour} {kind}."
    return f"There is no {kind}."


def diff_notes(a, b):
    """Each picture's shapes as (colour, shape, note): a shape of the first whose type the second
    lacks is "not in the second"; a shape of the second is "not in the first" when the first lacks
    its type, "<colour> in the first" when the first has that type in another colour, else it has
    no note. Types are unique within a picture, so every note comes from one lookup of a shape
    type in the other picture, a step a small model makes as reliably as it answers "What colour
    is the triangle?"; no note needs the model to walk a list it wrote earlier."""
    ta = {s["shape"]: s["colour"] for s in a["shapes"]}
    tb = {s["shape"]: s["colour"] for s in b["shapes"]}
    first = [(s["colour"], s["shape"], None if s["shape"] in tb else "not in the second") for s in a["shapes"]]
    second = []
    for s in b["shapes"]:
        c, k = s["colour"], s["shape"]
        second.append((c, k, "not in the first" if k not in ta else None if ta[k] == c else f"{ta[k]} in the first"))
    return first, second


def noted_phrase(c, k, note):
    return phrase(c, k) + (f" ({note})" if note else "")


def diff_answer(a, b):
    """Both pictures described, each shape that differs noted where it is named, e.g. "The first
    image shows a red circle and a blue heart. The second image shows a red circle and a black
    heart (blue in the first)."; when nothing is noted, "The two images are the same." follows."""
    first, second = diff_notes(a, b)
    text = (f"The first image shows {join_list([noted_phrase(*x) for x in first])}. "
            f"The second image shows {join_list([noted_phrase(*x) for x in second])}.")
    return text if any(x[2] for x in first + second) else f"{text} {SAME_A}"


SAME_A = "The two images are the same."
# Room for the longest answer (the difference between two unrelated pictures of four shapes: 104 tokens).
MAX_ANSWER_TOKENS = 128


def both_answer(a, b):
    da, db = describe(a), describe(b)
    return f"The first image shows {da[0].lower() + da[1:]} The second image shows {db[0].lower() + db[1:]}"


# ---------------------------------------------------------------- questions

def pick_absent(rng, scene):
    """A (colour, shape) pair not in the scene; often one that shares its colour or its shape."""
    present = {(s["colour"], s["shape"]) for s in scene["shapes"]}
    while True:
        r = rng.random()
        if r < 0.35:
            c, k = rng.choice(scene["shapes"])["colour"], rng.choice(SHAPES)
        elif r < 0.7:
            c, k = rng.choice(COLOUR_NAMES), rng.choice(scene["shapes"])["shape"]
        else:
            c, k = rng.choice(COLOUR_NAMES), rng.choice(SHAPES)
        if (c, k) not in present:
            return c, k


def question(rng, kind, scene, canonical=False):
    """(question, answer, info) about one picture."""
    # canonical: the first form; in training half the time the first form, else any paraphrase
    pick = (lambda xs: xs[0]) if canonical else (lambda xs: xs[0] if rng.random() < 0.5 else rng.choice(xs))
    if kind == "describe":
        q = rng.choice(Q_DESCRIBE[:2]) if canonical or rng.random() < 0.5 else rng.choice(Q_DESCRIBE)
        return q, describe(scene), {}
    if kind == "count":
        return pick(Q_COUNT), count_answer(scene), {}
    if kind == "colour":
        if rng.random() < 0.9:
            k = rng.choice(scene["shapes"])["shape"]
        else:
            k = rng.choice([x for x in SHAPES if x not in {s["shape"] for s in scene["shapes"]}])
        return pick(Q_COLOUR).format(s=k), colour_answer(scene, k), {"shape": k}
    if kind == "where":
        if rng.random() < 0.92 or canonical:
            s = rng.choice(scene["shapes"])
            c, k = s["colour"], s["shape"]
        else:
            c, k = pick_absent(rng, scene)
        return pick(Q_WHERE).format(c=c, s=k), where_answer(scene, c, k), {"colour": c, "shape": k}
    if kind == "yesno":
        if rng.random() < 0.5:
            s = rng.choice(scene["shapes"])
            c, k = s["colour"], s["shape"]
        else:
            c, k = pick_absent(rng, scene)
        return pick(Q_YESNO).format(a=article(c), c=c, s=k), yesno_answer(scene, c, k), {"colour": c, "shape": k}
    raise ValueError(kind)


ONE_IMAGE_KINDS = ["describe", "count", "colour", "where", "yesno"]


def text_only(rng):
    r = rng.random()
    if r < 0.3:
        q, a = rng.choice(GREET_Q), GREET_A
    elif r < 0.5:
        q, a = rng.choice(WHO_Q), WHO_A
    elif r < 0.75:
        q, a = rng.choice(CAN_Q), CAN_A
    elif r < 0.9:
        q, a = rng.choice(OTHER_Q), OTHER_A
    else:
        q, a = rng.choice(Q_DESCRIBE + Q_COUNT), NO_IMAGE_A
    return q, a


def user_content(rng, n_images, text, images_first=None):
    if images_first is None:
        images_first = rng.random() < 0.75
    imgs = [{"type": "image"} for _ in range(n_images)]
    txt = [{"type": "text", "text": text}]
    return imgs + txt if images_first else txt + imgs


# Mix of training sample types (weights).
MIX = [("describe", 0.22), ("count", 0.14), ("colour", 0.14), ("where", 0.12), ("yesno", 0.12),
       ("diff", 0.09), ("both", 0.07), ("text", 0.05), ("multiturn", 0.05)]


def sample_kind(rng):
    r, acc = rng.random(), 0.0
    for k, w in MIX:
        acc += w
        if r < acc:
            return k
    return MIX[-1][0]


def make_sample(seed, index, kind=None, canonical=False, draw=True, varied=0.0):
    """One conversation: {'kind', 'scenes', 'images', 'messages'} where the assistant turns
    are the training targets. Fully determined by (seed, index, varied); `varied` is the share of
    conversations whose pictures come from make_varied_scene (0: the stream of the earlier stages)."""
    rng = random.Random(seed * 1_000_003 + index)
    kind = kind or sample_kind(rng)
    vary = varied > 0 and rng.random() < varied
    scenes = []
    if kind in ONE_IMAGE_KINDS:
        sc = make_scene(rng, varied=vary)
        scenes = [sc]
        q, a, info = question(rng, kind, sc, canonical)
        messages = [{"role": "user", "content": user_content(rng, 1, q, True if canonical else None)},
                    {"role": "assistant", "content": a}]
    elif kind in ("diff", "both"):
        size = random_size(rng, vary)
        a_sc = make_scene(rng, size, varied=vary)
        if kind == "diff":
            r = rng.random()  # mostly one shape changed; sometimes the same picture, or another one
            b_sc = a_sc if r < 0.12 else make_scene(rng, size, varied=vary) if r < 0.22 else variant_scene(rng, a_sc)
            q = Q_DIFF[0] if canonical else rng.choice(Q_DIFF)
            ans = diff_answer(a_sc, b_sc)
        else:
            b_sc = variant_scene(rng, a_sc) if rng.random() < 0.3 else make_scene(rng, size if rng.random() < 0.7 else None, varied=vary)
            q = Q_BOTH[0] if canonical else rng.choice(Q_BOTH)
            ans = both_answer(a_sc, b_sc)
        scenes = [a_sc, b_sc]
        messages = [{"role": "user", "content": user_content(rng, 2, q, True if canonical else None)},
                    {"role": "assistant", "content": ans}]
    elif kind == "text":
        q, a = text_only(rng)
        if canonical:
            q, a = rng.choice([("Hello", GREET_A), ("Hi!", GREET_A), ("Who are you?", WHO_A), ("What can you do?", CAN_A)])
        messages = [{"role": "user", "content": q if rng.random() < 0.7 else [{"type": "text", "text": q}]},
                    {"role": "assistant", "content": a}]
    elif kind == "multiturn":
        sc = make_scene(rng, varied=vary)
        scenes = [sc]
        k1, k2 = rng.sample(ONE_IMAGE_KINDS, 2)
        q1, a1, _ = question(rng, k1, sc)
        q2, a2, _ = question(rng, k2, sc)
        messages = [{"role": "user", "content": user_content(rng, 1, q1)},
                    {"role": "assistant", "content": a1},
                    {"role": "user", "content": q2},
                    {"role": "assistant", "content": a2}]
        if rng.random() < 0.3:  # greeting first, then the picture
            gq, ga = rng.choice(GREET_Q), GREET_A
            messages = [{"role": "user", "content": gq}, {"role": "assistant", "content": ga}] + messages[:2]
    else:
        raise ValueError(kind)
    images = [render(s, rng) for s in scenes] if draw else []
    return {"kind": kind, "scenes": scenes, "images": images, "messages": messages}


# ---------------------------------------------------------------- chat template

IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


def render_chat(messages, add_generation_prompt=False):
    """The released Qwen2-VL chat template (chat_template.json), for our message shapes."""
    out = []
    if messages[0]["role"] != "system":
        out.append(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n")
    for m in messages:
        out.append(f"<|im_start|>{m['role']}\n")
        if isinstance(m["content"], str):
            out.append(m["content"] + "<|im_end|>\n")
        else:
            for c in m["content"]:
                if c["type"] in ("image", "image_url"):
                    out.append(IMAGE_PLACEHOLDER)
                elif "text" in c:
                    out.append(c["text"])
            out.append("<|im_end|>\n")
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


if __name__ == "__main__":
    import sys
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    for i in range(n):
        s = make_sample(1, i)
        print(s["kind"], [im.size for im in s["images"]], repr(render_chat(s["messages"])))
