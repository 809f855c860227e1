"""A small byte-level BPE tokenizer in the Qwen2 layout, learned from the training text.

`train_bpe` learns merges from a list of strings; `ByteBPE` encodes exactly as the
Hugging Face `tokenizers` BPE model with Qwen2's Split regex + ByteLevel pre-tokenizer does
(special tokens are split off first); `save` writes tokenizer.json, vocab.json, merges.txt and
tokenizer_config.json.
"""
import collections
import json
import os

import regex

# Qwen2's pre-tokenizer regex (from the released tokenizer.json).
PRETOKENIZE = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
PAT = regex.compile(PRETOKENIZE)

# Added tokens after the learned vocabulary, in Qwen2-VL's order; the first 8 are special.
ADDED = [
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|vision_start|>", True),
    ("<|vision_end|>", True), ("<|vision_pad|>", True), ("<|image_pad|>", True), ("<|video_pad|>", True),
    ("<tool_call>", False), ("</tool_call>", False), ("<|fim_prefix|>", False), ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
]
SPECIAL_SPLIT = regex.compile("(" + "|".join(regex.escape(t) for t, _ in ADDED) + ")")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


B2U = bytes_to_unicode()
U2B = {v: k for k, v in B2U.items()}


def pretokenize(text):
    return ["".join(B2U[b] for b in w.encode("utf-8")) for w in PAT.findall(text)]


def merge_pair(s, a, b):
    """The symbols of `s` with every adjacent (a, b), left to right, joined into one."""
    out, i = [], 0
    while i < len(s):
        if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(s[i])
            i += 1
    return out


def train_bpe(texts, num_merges, min_freq=2):
    words = collections.Counter()
    for t in texts:
        for piece in SPECIAL_SPLIT.split(t):
            if piece and piece not in dict(ADDED):
                words.update(pretokenize(piece))
    seqs = {w: list(w) for w in words}
    merges = []
    for _ in range(num_merges):
        pairs = collections.Counter()
        for w, f in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += f
        if not pairs:
            break
        # most frequent; ties broken by the pair itself so the result is deterministic
        (a, b), f = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if f < min_freq:
            break
        merges.append((a, b))
        for w in words:
            seqs[w] = merge_pair(seqs[w], a, b)
    return merges


class ByteBPE:
    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        self.vocab = {}
        for b in range(256):
            pass
        # base vocabulary in GPT-2's bytes_to_unicode order (printable bytes first), as Qwen2
        for ch in B2U.values():
            self.vocab[ch] = len(self.vocab)
        for a, b in self.merges:
            if a + b not in self.vocab:
                self.vocab[a + b] = len(self.vocab)
        self.added = {}
        for t, _special in ADDED:
            self.added[t] = len(self.vocab) + len(self.added)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.id_to_token.update({i: t for t, i in self.added.items()})
        self.cache = {}

    def __len__(self):
        return len(self.vocab) + len(self.added)

    def token_id(self, t):
        return self.added.get(t, self.vocab.get(t))

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        s = list(word)
        while len(s) > 1:
            best, bi = None, -1
            for i in range(len(s) - 1):
                r = self.ranks.get((s[i], s[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if best is None:
                break
            s = merge_pair(s, *self.merges[best])
        ids = [self.vocab[t] for t in s]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        ids = []
        for piece in SPECIAL_SPLIT.split(text):
            if not piece:
                continue
            if piece in self.added:
                ids.append(self.added[piece])
            else:
                for w in pretokenize(piece):
                    ids.extend(self.bpe(w))
        return ids

    def decode(self, ids, skip_special=True):
        out, buf = [], bytearray()
        specials = {self.added[t] for t, s in ADDED if s}
        for i in ids:
            t = self.id_to_token[i]
            if i in self.added.values():
                if skip_special and i in specials:
                    continue
                out.append(buf.decode("utf-8", "replace"))
                buf = bytearray()
                out.append(t)
            else:
                buf.extend(U2B[c] for c in t)
        out.append(buf.decode("utf-8", "replace"))
        return "".join(out)

    def save(self, folder, chat_template):
        os.makedirs(folder, exist_ok=True)
        bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
        tj = {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [
                {"id": self.added[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": s}
                for t, s in ADDED
            ],
            "normalizer": {"type": "NFC"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": PRETOKENIZE}, "behavior": "Isolated", "invert": False}, bl]},
            "post_processor": bl,
            "decoder": bl,
            "model": {
                "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                "vocab": self.vocab,
                "merges": [f"{a} {b}" for a, b in self.merges],
            },
        }
        with open(os.path.join(folder, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(tj, f, ensure_ascii=False, indent=2)
        with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(self.vocab, f, ensure_ascii=False)
        with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in self.merges))
        cfg = {
            "add_prefix_space": False,
            "added_tokens_decoder": {
                str(self.added[t]): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                     "single_word": False, "special": s}
                for t, s in ADDED
            },
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                                          "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"],
            "bos_token": None,
            "chat_template": chat_template,
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|im_end|>",
            "errors": "replace",
            "model_max_length": 4096,
            "pad_token": "<|endoftext|>",
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        }
        with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, ensure_ascii=False, indent=2)
        with open(os.path.join(folder, "chat_template.json"), "w", encoding="utf-8") as f:
            json.dump({"chat_template": chat_template}, f, ensure_ascii=False, indent=2)

    @classmethod
    def load(cls, folder):
        with open(os.path.join(folder, "tokenizer.json"), encoding="utf-8") as f:
            tj = json.load(f)
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in tj["model"]["merges"]]
        tok = cls(merges)
        assert tok.vocab == tj["model"]["vocab"], "vocab mismatch"
        return tok
