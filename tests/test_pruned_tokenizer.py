"""The pruned copy of a large Unigram tokenizer gives the full tokenizer's ids on every text."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

tokenizers = pytest.importorskip("tokenizers")

# Invented pieces in four scripts (CJK and ASCII kept; Cyrillic, kana, Hangul pruned); the lowest-scoring piece is Cyrillic (outside the kept script),
# so pruning must keep it for the unknown-character penalty to stay the same.
PIECES = (["<s>", "<pad>", "</s>", "<unk>"]
          + list("科技创新高校企业人才平台资金支持建设合作研发机构，。、；（）")
          + ["科技", "创新", "高校", "企业", "人才", "平台", "研发", "研发机构", "科技创新", "支持高校",
             "▁", "▁科技", "▁AI", "AI", "5G", "R", "&", "D", "R&D", "▁the", "the", "e", "t", "h", "5", "G", "A", "I",
             "при", "вет", "привет", "п", "р", "и", "в", "е", "т", "▁при", "です", "で", "す", "の", "한국", "한", "ñ"])


def write_unigram(path: Path) -> Path:
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import Unigram

    rng = random.Random(1)
    vocab = [(p, 0.0) if p.startswith("<") else (p, -rng.uniform(1, 9)) for p in PIECES]
    vocab[PIECES.index("п")] = ("п", -20.0)  # the minimum score
    tk = Tokenizer(Unigram(vocab, unk_id=3))
    tk.normalizer = normalizers.Sequence([normalizers.NFKC()])
    tk.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tk.decoder = decoders.Metaspace()
    tk.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    path.mkdir(parents=True, exist_ok=True)
    tk.save(str(path / "tokenizer.json"))
    return path / "tokenizer.json"


def random_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    inside = list("科技创新高校企业人才平台资金支持建设合作研发机构，。、；（）AIRDGthe5& \n") + ["未"]  # 未: unknown
    outside = list("приветのです한국ñアイ\ue5f9")
    texts = []
    for k in range(n):
        alphabet = inside + (outside if k % 3 == 0 else [])
        texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))))
    return texts


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POLICYCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("POLICYCLF_PRUNED_TOKENIZER", raising=False)
    return tmp_path / "cache"


def test_pruned_ids_equal_full_ids_and_outside_texts_use_the_full_tokenizer(tmp_path, cache):
    from tokenizers import Tokenizer

    from policyclf.models.pruned_tokenizer import TwoTierTokenizer, in_script

    src = write_unigram(tmp_path / "tok")
    full = Tokenizer.from_file(str(src))
    two = TwoTierTokenizer(src)
    assert two.pruned
    pruned_spec = json.loads(next(cache.glob("tokenizers/*/tokenizer.json")).read_text(encoding="utf-8"))
    kept = [p for p, _ in pruned_spec["model"]["vocab"]]
    assert "привет" not in kept and "です" not in kept and "한국" not in kept and "科技创新" in kept and "R&D" in kept
    assert "п" in kept  # the minimum score stays
    texts = random_texts(3000)
    assert two.encode(texts) == [e.ids for e in full.encode_batch(texts, add_special_tokens=False)]
    removed = {ch for p in PIECES for ch in p if not in_script(ch)}
    outside = sum(not removed.isdisjoint(full.normalizer.normalize_str(t)) for t in texts)
    assert 0 < outside < len(texts) and two.full_encoded == outside
    # characters outside the script that no piece holds are unknown to both: no full tokenizer needed
    before = two.full_encoded
    texts = ["科技\ue5f9创新", "アイ高校", "п企业"]
    assert two.encode(texts) == [e.ids for e in full.encode_batch(texts, add_special_tokens=False)]
    assert two.full_encoded == before + 1  # only п (in the vocabulary, pruned) needs it
    for token in ("<s>", "</s>", "<pad>", "<unk>", "<mask>", "科技", "привет"):
        assert two.token_to_id(token) == full.token_to_id(token)
    # unknown characters (penalty from the minimum score) segment the same
    texts = ["未科技未未创新", "科技未", "AI未R&D"]
    assert two.encode(texts) == [e.ids for e in full.encode_batch(texts, add_special_tokens=False)]
    assert any(3 in ids for ids in two.encode(texts))


def test_pruned_copy_is_written_once_and_reused(tmp_path, cache):
    from policyclf.models.pruned_tokenizer import TwoTierTokenizer

    src = write_unigram(tmp_path / "tok")
    TwoTierTokenizer(src)
    (copy,) = cache.glob("tokenizers/*/tokenizer.json")
    stamp = copy.stat().st_mtime_ns
    assert TwoTierTokenizer(src).pruned and copy.stat().st_mtime_ns == stamp
    # a changed source file gets its own copy
    spec = json.loads(src.read_text(encoding="utf-8"))
    spec["model"]["vocab"][4][1] -= 0.5
    src.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    TwoTierTokenizer(src)
    assert len(list(cache.glob("tokenizers/*/tokenizer.json"))) == 2


def test_full_tokenizer_when_pruning_is_off_impossible_or_pointless(tmp_path, cache, monkeypatch, tiny_bert_dir):
    from tokenizers import Tokenizer

    from policyclf.models.pruned_tokenizer import TwoTierTokenizer

    src = write_unigram(tmp_path / "tok")
    texts = random_texts(200, seed=3)
    expected = [e.ids for e in Tokenizer.from_file(str(src)).encode_batch(texts, add_special_tokens=False)]
    monkeypatch.setenv("POLICYCLF_PRUNED_TOKENIZER", "0")
    off = TwoTierTokenizer(src)
    assert not off.pruned and off.encode(texts) == expected
    monkeypatch.delenv("POLICYCLF_PRUNED_TOKENIZER")
    monkeypatch.setenv("POLICYCLF_CACHE", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("not a folder")
    unwritable = TwoTierTokenizer(src)
    assert not unwritable.pruned and unwritable.encode(texts) == expected
    monkeypatch.setenv("POLICYCLF_CACHE", str(cache))
    wordpiece = TwoTierTokenizer(tiny_bert_dir / "tokenizer.json")  # not Unigram: used as it is
    assert not wordpiece.pruned and wordpiece.encode(["科技创新"]) == [
        e.ids for e in Tokenizer.from_file(str(tiny_bert_dir / "tokenizer.json")).encode_batch(
            ["科技创新"], add_special_tokens=False)]


def test_prune_remaps_special_token_ids():
    from policyclf.models.pruned_tokenizer import prune

    spec = {"model": {"type": "Unigram", "unk_id": 2, "vocab": [["<s>", 0.0], ["привет", -1.0], ["<unk>", 0.0],
                                                                 ["科", -2.0], ["п", -9.0], ["<mask>", 0.0]]},
            "added_tokens": [{"id": 0, "content": "<s>"}, {"id": 2, "content": "<unk>"}, {"id": 5, "content": "<mask>"}],
            "pre_tokenizer": {"type": "Metaspace", "replacement": "▁"},
            "post_processor": {"type": "TemplateProcessing", "special_tokens": {"<s>": {"id": "<s>", "ids": [0]},
                                                                                "<mask>": {"id": "<mask>", "ids": [5]}}}}
    out, ids = prune(spec)
    assert [p for p, _ in out["model"]["vocab"]] == ["<s>", "<unk>", "科", "п", "<mask>"]
    assert ids.tolist() == [0, 2, 3, 4, 5] and out["model"]["unk_id"] == 1
    assert [t["id"] for t in out["added_tokens"]] == [0, 1, 4]
    assert out["post_processor"]["special_tokens"]["<mask>"]["ids"] == [4]
    assert prune({**spec, "pre_tokenizer": {"type": "ByteLevel"}}) is None  # adds characters: not pruned
    assert prune({"model": {"type": "WordPiece", "vocab": {}}}) is None


def test_damaged_cached_copy_is_replaced_and_ids_stay_right(tmp_path, cache):
    from tokenizers import Tokenizer

    from policyclf.models.pruned_tokenizer import TwoTierTokenizer

    src = write_unigram(tmp_path / "tok")
    TwoTierTokenizer(src)
    (copy,) = cache.glob("tokenizers/*/tokenizer.json")
    copy.write_text("{not json", encoding="utf-8")
    texts = random_texts(100, seed=5)
    expected = [e.ids for e in Tokenizer.from_file(str(src)).encode_batch(texts, add_special_tokens=False)]
    damaged = TwoTierTokenizer(src)
    assert not damaged.pruned and damaged.encode(texts) == expected
    rebuilt = TwoTierTokenizer(src)
    assert rebuilt.pruned and rebuilt.encode(texts) == expected
