"""Gemma 3 tokenizer.json read directly (no transformers, no SentencePiece): used to check every prompt's ids
and by independent_port.py."""
import json
import re


class IndependentGemmaBPE:
    """Reads tokenizer.json directly (not transformers' code, not SentencePiece): split on the added tokens,
    normalizer Replace(' ' -> U+2581), pre-tokenizer Split(' ', MergedWithPrevious) (a no-op after the
    normalizer), BPE by merge rank over the whole segment, byte fallback (<0xXX>) for characters not in the
    vocabulary. No <bos> is added (the chat template writes it)."""

    def __init__(self, path):
        t = json.load(open(path, encoding="utf-8"))
        m = t["model"]
        assert m["type"] == "BPE" and m["byte_fallback"] is True
        assert t["normalizer"] == {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}, t["normalizer"]
        self.vocab = m["vocab"]
        merges = [tuple(x.split(" ")) if isinstance(x, str) else tuple(x) for x in m["merges"]]
        self.ranks = {p: i for i, p in enumerate(merges)}
        self.added = {a["content"]: a["id"] for a in t["added_tokens"]}
        self.id2tok = {v: k for k, v in self.vocab.items()}
        for k, v in self.added.items():
            self.id2tok[v] = k
        self.special_ids = {a["id"] for a in t["added_tokens"] if a["special"]}

    def _bpe(self, s):
        parts = []
        for ch in s:
            if ch in self.vocab:
                parts.append(ch)
            else:
                parts.extend("<0x%02X>" % b for b in ch.encode("utf-8"))
        while len(parts) > 1:
            best = None
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
        return [self.vocab[p] for p in parts]

    def encode(self, text):
        ids = []
        specials = sorted(self.added, key=len, reverse=True)
        i, buf = 0, ""
        while i < len(text):
            for sp in specials:
                if text.startswith(sp, i):
                    if buf:
                        ids.extend(self._bpe(buf.replace(" ", "\u2581")))
                    buf = ""
                    ids.append(self.added[sp])
                    i += len(sp)
                    break
            else:
                buf += text[i]
                i += 1
        if buf:
            ids.extend(self._bpe(buf.replace(" ", "\u2581")))
        return ids

    def decode_rust_semantics(self, ids, skip_special_tokens=True):
        """tokenizers' decoder Sequence[Replace(U+2581 -> ' '), ByteFallback, Fuse]: a run of consecutive
        <0xXX> tokens becomes its UTF-8 string if the whole run is valid, else one U+FFFD per byte."""
        out, run = [], []

        def flush():
            if run:
                try:
                    out.append(bytes(run).decode("utf-8"))
                except UnicodeDecodeError:
                    out.append("\ufffd" * len(run))
                run.clear()

        for t in ids:
            if skip_special_tokens and t in self.special_ids:
                continue
            tok = self.id2tok[t]
            mm = re.fullmatch(r"<0x([0-9A-F]{2})>", tok)
            if mm:
                run.append(int(mm.group(1), 16))
            else:
                flush()
                out.append(tok.replace("\u2581", " "))
        flush()
        return "".join(out)

    def raw_bytes(self, ids):
        b = b""
        for t in ids:
            if t in self.special_ids:
                continue
            tok = self.id2tok[t]
            mm = re.fullmatch(r"<0x([0-9A-F]{2})>", tok)
            b += bytes([int(mm.group(1), 16)]) if mm else tok.replace("\u2581", " ").encode("utf-8")
        return b
