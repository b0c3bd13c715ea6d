"""A faster-loading copy of a large SentencePiece-Unigram tokenizer, exact on the texts it accepts.

Building the 250k-piece multilingual Unigram tokenizer from its ``tokenizer.json`` takes ~0.6 s on a
fast core and over a second on a slow one, a large part of ``policyclf predict``'s start-up. Chinese
policy texts use a small part of that vocabulary: CJK characters and punctuation, ASCII, full-width
forms and a few symbol blocks (``SCRIPT``). The pruned copy keeps every piece made only of those
characters (and the special pieces), about half the vocabulary, and loads in about a third of the time.

Why it is exact: Unigram segmentation is the best-scoring path through the pieces that match
substrings of the normalised, pre-tokenised text. If every character of a text lies in ``SCRIPT``,
every piece that can match lies in ``SCRIPT`` too and is kept with its score; the piece with the
lowest score is kept as well, so the penalty for unknown characters (lowest score − 10) is unchanged.
The lattice, and so the segmentation, is the same; pruned ids are mapped back to the full ids. More
generally a removed piece can only match a text that holds one of its characters outside ``SCRIPT``:
a text (after normalisation) without any character outside ``SCRIPT`` that occurs in the vocabulary
segments the same with the pruned copy (other characters are unknown to both). The rare texts that
hold one are encoded by the full tokenizer, loaded on first need. Verified id for id on every corpus passage (slow test) and on random texts (tests).

The copy is written once per source file into ``$POLICYCLF_CACHE/tokenizers/<sha1>-<version>/``;
if that cannot be written, the full tokenizer is used. ``POLICYCLF_PRUNED_TOKENIZER=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

VERSION = "3"
# (first, last) code points of the characters a pruned piece may contain. The Metaspace marker ▁ is
# always allowed (it stands for the spaces of the text, and space is in the ASCII block).
SCRIPT = ((0x09, 0x0D),      # tab, line breaks
          (0x20, 0x7E),      # ASCII
          (0xA0, 0xFF),      # Latin-1 symbols (·, ×, °, §)
          (0x2000, 0x206F),  # general punctuation (—, “, ”, …, ‰)
          (0x2100, 0x23FF),  # letterlike, number forms (Ⅰ), arrows, mathematical operators
          (0x2460, 0x24FF),  # enclosed alphanumerics (①)
          (0x2500, 0x27BF),  # box drawing, shapes (■, ●), dingbats
          (0x3000, 0x303F),  # CJK symbols and punctuation (、。《》【】)
          (0x3400, 0x4DBF),  # CJK extension A
          (0x4E00, 0x9FFF),  # CJK unified ideographs
          (0xF900, 0xFAFF),  # CJK compatibility ideographs
          (0xFE30, 0xFE4F),  # CJK compatibility forms
          (0xFF00, 0xFFEF))  # half-width and full-width forms
METASPACE = "\u2581"
_OUTSIDE = re.compile("[^" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in SCRIPT) + METASPACE + "]")
ENV = "POLICYCLF_PRUNED_TOKENIZER"


def in_script(text: str) -> bool:
    """Whether every character of ``text`` lies in ``SCRIPT`` (or is the Metaspace marker)."""
    return _OUTSIDE.search(text) is None


def _plain_pre_tokenizer(pre: dict[str, Any] | None) -> bool:
    """Whether ``pre`` only splits text and marks spaces with ▁ (adds no other characters)."""
    if pre is None:
        return True
    if pre.get("type") == "Sequence":
        return all(_plain_pre_tokenizer(p) for p in pre.get("pretokenizers", []))
    if pre.get("type") == "Metaspace":
        return pre.get("replacement", METASPACE) == METASPACE
    return pre.get("type") in ("WhitespaceSplit", "Whitespace", "Punctuation", "Digits")


def prune(spec: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray] | None:
    """The pruned ``tokenizer.json`` content and, per pruned id, the full id; None when ``spec`` is
    not a Unigram tokenizer (or pruning would not remove anything)."""
    model = spec.get("model") or {}
    if model.get("type") != "Unigram" or model.get("byte_fallback") or not _plain_pre_tokenizer(spec.get("pre_tokenizer")):
        return None
    vocab = model["vocab"]
    special = {t["id"] for t in spec.get("added_tokens", [])}
    if model.get("unk_id") is not None:
        special.add(model["unk_id"])
    special.add(min(range(len(vocab)), key=lambda i: vocab[i][1]))  # keeps min score → same unknown penalty
    kept = [i for i, (piece, _) in enumerate(vocab) if i in special or in_script(piece)]
    if len(kept) == len(vocab):
        return None
    # added tokens may sit past the model's vocabulary: they keep their offset from its end
    beyond = list(range(len(vocab), max([t["id"] + 1 for t in spec.get("added_tokens", [])] + [len(vocab)])))
    new_id = {old: new for new, old in enumerate(kept + beyond)}
    out = json.loads(json.dumps(spec))
    out["model"]["vocab"] = [vocab[i] for i in kept]
    if model.get("unk_id") is not None:
        out["model"]["unk_id"] = new_id[model["unk_id"]]
    for token in out.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    post = out.get("post_processor") or {}
    for entry in (post.get("special_tokens") or {}).values():  # TemplateProcessing
        entry["ids"] = [new_id[i] for i in entry.get("ids", [])]
    for key in ("cls", "sep"):  # RobertaProcessing / BertProcessing: [token, id]
        if isinstance(post.get(key), list) and len(post[key]) == 2:
            post[key][1] = new_id[post[key][1]]
    return out, np.asarray(kept + beyond, dtype=np.int64)


def _cache_root() -> Path:
    from policyclf.models.base_model import cache_dir

    return cache_dir() / "tokenizers"


def pruned_copy(source: Path) -> tuple[Path, Path, Path] | None:
    """(pruned tokenizer.json, id map .npy, the characters outside ``SCRIPT`` that occur in the full
    vocabulary) for ``source``, written to the cache on first use; None
    when pruning does not apply, is turned off, or the cache cannot be written."""
    if os.environ.get(ENV, "1") == "0":
        return None
    raw = source.read_bytes()
    key = f"{hashlib.sha1(raw).hexdigest()}-{VERSION}"
    folder = _cache_root() / key
    tok, ids, chars = folder / "tokenizer.json", folder / "ids.npy", folder / "removed-chars.txt"
    none = folder / "not-applicable"
    if none.exists():
        return None
    if tok.is_file() and ids.is_file() and chars.is_file():
        return tok, ids, chars
    try:
        folder.mkdir(parents=True, exist_ok=True)
        full_spec = json.loads(raw)
        result = prune(full_spec)
        if result is None:
            none.touch()
            return None
        spec, kept = result
        removed = sorted({ch for piece, _ in full_spec["model"]["vocab"] for ch in piece if not in_script(ch)})
        with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".txt", delete=False, encoding="utf-8") as f:
            f.write("".join(removed))
        os.replace(f.name, chars)
        with tempfile.NamedTemporaryFile("wb", dir=folder, suffix=".npy", delete=False) as f:
            np.save(f, kept)
        os.replace(f.name, ids)
        with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".json", delete=False, encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False)
        os.replace(f.name, tok)
    except OSError:
        return None
    return tok, ids, chars


class TwoTierTokenizer:
    """``encode(texts) -> list of full-vocabulary id lists``: the pruned tokenizer for texts without
    a character of the removed pieces, the full one (loaded on first need) for the others. Ids equal
    the full tokenizer's."""

    def __init__(self, source: Path) -> None:
        from tokenizers import Tokenizer

        self.source = source
        self._full: Any = None
        self.full_encoded = 0  # texts the full tokenizer encoded (for tests and diagnostics)
        copy = pruned_copy(source)
        self._pruned, self._ids, self._removed = None, None, frozenset()
        if copy is not None:
            try:
                self._pruned = Tokenizer.from_file(str(copy[0]))
                self._ids = np.load(copy[1])
                self._removed = frozenset(copy[2].read_text(encoding="utf-8"))
                if len(self._ids) < self._pruned.get_vocab_size(with_added_tokens=True):
                    raise ValueError("id map shorter than the vocabulary")
            except Exception:  # a damaged cached copy: remove it (rebuilt next time) and use the full one
                import shutil

                shutil.rmtree(copy[0].parent, ignore_errors=True)
                self._pruned, self._ids, self._removed = None, None, frozenset()
        if self._pruned is None:
            self.full()
        else:
            self._pruned.no_truncation()
            self._pruned.no_padding()

    @property
    def pruned(self) -> bool:
        return self._pruned is not None

    def full(self) -> Any:
        if self._full is None:
            from tokenizers import Tokenizer

            self._full = Tokenizer.from_file(str(self.source))
            self._full.no_truncation()
            self._full.no_padding()
        return self._full

    def token_to_id(self, token: str) -> int | None:
        if self._pruned is None:
            return self.full().token_to_id(token)
        i = self._pruned.token_to_id(token)
        if i is None:  # a pruned piece (or none at all): the full vocabulary decides
            return self.full().token_to_id(token)
        return int(self._ids[i])

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        texts = list(texts)
        if self._pruned is None:
            return [e.ids for e in self.full().encode_batch(texts, add_special_tokens=False)]
        norm = self._pruned.normalizer
        inside = [self._removed.isdisjoint(norm.normalize_str(t) if norm is not None else t) for t in texts]
        out: list[list[int]] = [[] for _ in texts]
        mine = [i for i, ok in enumerate(inside) if ok]
        if mine:
            enc = self._pruned.encode_batch([texts[i] for i in mine], add_special_tokens=False)
            for i, e in zip(mine, enc):
                out[i] = self._ids[e.ids].tolist() if e.ids else []
        rest = [i for i, ok in enumerate(inside) if not ok]
        if rest:
            self.full_encoded += len(rest)
            for i, e in zip(rest, self.full().encode_batch([texts[i] for i in rest], add_special_tokens=False)):
                out[i] = e.ids
        return out
