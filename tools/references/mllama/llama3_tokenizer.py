"""Pure-Python stand-in for the Rust `tokenizers` object behind Llama 3's `PreTrainedTokenizerFast`.

The Llama 3.2 Vision release ships only `tokenizer.json` (tokenizer_class PreTrainedTokenizerFast);
transformers has no slow class for it, and the reference environment has no Rust `tokenizers`.
This class reproduces what the Rust tokenizer does with that tokenizer.json, and nothing else:

  * added tokens (all `special`, `normalized` false, no strip) are split off first, longest match;
  * pre-tokenizer Sequence[Split(<Llama 3 regex>, Isolated), ByteLevel(add_prefix_space=false,
    use_regex=false)]: regex pieces, each mapped byte -> unicode with the GPT-2 byte table;
  * model BPE with `ignore_merges: true`: a piece that is a vocabulary entry as a whole is emitted
    directly, otherwise the merges are applied by rank;
  * post-processor TemplateProcessing `single: [<|begin_of_text|>, $A]` (add_special_tokens=True
    prepends the BOS id);
  * decode: the ByteLevel decoder over all kept tokens, then UTF-8 with U+FFFD for invalid
    sequences (`String::from_utf8_lossy`); skip_special_tokens drops every added token marked
    special; no spaces are inserted around added tokens (the slow `spaces_between_special_tokens`
    behaviour is not the fast one).

It reads vocab.json / merges.txt (as the release ships them next to tokenizer.json) and takes the
regex, `ignore_merges` and the BOS template from tokenizer.json; it asserts they agree.
"""
import json
import os

import regex

from transformers import GPT2Tokenizer


class Llama3ByteBPETokenizer(GPT2Tokenizer):
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(self, vocab_file, merges_file, *args, **kwargs):
        kwargs.setdefault("add_bos_token", True)
        kwargs["add_prefix_space"] = False
        super().__init__(vocab_file, merges_file, *args, **kwargs)
        tj = json.load(open(os.path.join(os.path.dirname(vocab_file), "tokenizer.json"), encoding="utf-8"))
        pre = tj["pre_tokenizer"]
        assert pre["type"] == "Sequence", pre
        split = [p for p in pre["pretokenizers"] if p["type"] == "Split"][0]
        assert split["behavior"] == "Isolated" and not split["invert"]
        bl = [p for p in pre["pretokenizers"] if p["type"] == "ByteLevel"][0]
        assert not bl["add_prefix_space"] and not bl["use_regex"]
        self.pat = regex.compile(split["pattern"]["Regex"])
        self.ignore_merges = bool(tj["model"].get("ignore_merges", False))
        assert tj["normalizer"] is None
        assert tj["model"]["vocab"] == self.encoder, "vocab.json differs from tokenizer.json"
        pp = [p for p in tj["post_processor"]["processors"] if p["type"] == "TemplateProcessing"][0]
        first = pp["single"][0]["SpecialToken"]["id"]
        assert first == self.bos_token, (first, self.bos_token)
        self._special_added_ids = {a["id"] for a in tj["added_tokens"] if a["special"]}

    def _tokenize(self, text):
        out = []
        for piece in self.pat.findall(text):
            mapped = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            if self.ignore_merges and mapped in self.encoder:
                out.append(mapped)
            else:
                out.extend(self.bpe(mapped).split(" "))
        return out

    def _decode(self, token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=None, **kwargs):
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        raw = b""
        for i in token_ids:
            i = int(i)
            if i in self._added_tokens_decoder:
                if skip_special_tokens and i in self._special_added_ids:
                    continue
                raw += self._added_tokens_decoder[i].content.encode("utf-8")
                continue
            tok = self.decoder[i]
            try:
                raw += bytes(self.byte_decoder[c] for c in tok)
            except KeyError:
                raw += tok.encode("utf-8")
        text = raw.decode("utf-8", errors="replace")
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces:
            text = self.clean_up_tokenization(text)
        return text
