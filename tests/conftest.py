"""Shared fixtures: a tiny randomly initialised BERT built in the test (no network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["POLICYCLF_DISTILL_CACHE"] = "0"  # tests never write teacher scores into the user's cache
os.environ["POLICYCLF_CHECKPOINTS"] = "0"  # nor training checkpoints (the tests that check them turn them on)

# Short invented policy-style sentences (written for the tests, not corpus text).
TOY = [
    ("设立科技专项资金支持企业研发", ["investment_channels"]),
    ("鼓励银行开展知识产权质押贷款", ["investment_channels"]),
    ("引进海外高层次人才给予住房补贴", ["talent_teams"]),
    ("高校与企业联合培养专业技术人才", ["talent_teams"]),
    ("建设公共技术服务平台和孵化器", ["cooperation_platforms"]),
    ("共建联合实验室和新型研发机构", ["cooperation_platforms"]),
    ("本条例自公布之日起施行", []),
    ("违反本条例规定的依法处罚", []),
]


def toy_data(repeat: int = 4) -> tuple[list[str], list[list[str]]]:
    texts = [t for t, _ in TOY] * repeat
    labels = [list(lab) for _, lab in TOY] * repeat
    return texts, labels


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, hidden-32 BERT with a character vocabulary from the toy texts."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny_bert")
    chars = sorted({ch for text, _ in TOY for ch in text} | set("，。的和与在对"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    try:  # transformers 5 takes the vocabulary as `vocab`, 4.x as `vocab_file`
        tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)})
    except TypeError:
        tok = BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    assert tok("科技")["input_ids"][1] != tok.unk_token_id
    tok.save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(path)
    return path


def _passage(pid: str, region: str, text: str, pool: str = "six_regions", doc_type: str = "regulation") -> dict:
    doc_id = pid.rsplit("-", 1)[0]
    return {"passage_id": pid, "doc_id": doc_id, "region": region, "doc_type": doc_type, "pool": pool,
            "seq": int(pid.rsplit("-", 1)[1]), "heading": "", "text": text}


@pytest.fixture()
def fake_corpus(tmp_path: Path) -> Path:
    """A small corpus directory of invented passages in the real file format (two regions + one unseen)."""
    import json

    rows = []
    for region, code in (("beijing", "aaaa0001"), ("shanghai", "bbbb0002"), ("jiangsu", "cccc0003")):
        for k, (text, _) in enumerate(TOY * 2, 1):
            rows.append(_passage(f"{region}-reg-{code}-{k:03d}", region, f"{text}（{region}{k}）"))
    rows += [_passage(f"anhui-gwr-dddd0004-{k:03d}", "anhui", f"{text}（皖{k}）", "other_provinces", "work_report")
             for k, (text, _) in enumerate(TOY, 1)]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with (corpus / "passages.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    (corpus / "documents.jsonl").write_text("", encoding="utf-8")
    return corpus


@pytest.fixture()
def fake_repo(tmp_path: Path, fake_corpus: Path) -> Path:
    """A repository root with data/annotated final records for every fake passage (labels from TOY)."""
    import json

    from policyclf.corpus import text_sha1

    root = tmp_path / "repo"
    adir = root / "data" / "annotated"
    adir.mkdir(parents=True)
    toy_labels = [lab for _, lab in TOY] * 2
    six, other = [], []
    for line in (fake_corpus / "passages.jsonl").read_text(encoding="utf-8").splitlines():
        p = json.loads(line)
        labels = toy_labels[p["seq"] - 1]
        rec = {"passage_id": p["passage_id"], "text_sha1": text_sha1(p["text"]), "labels": labels,
               "subcodes": [], "coder": "A", "note": ""}
        (six if p["pool"] == "six_regions" else other).append(rec)
    for name, rows in (("six_regions.jsonl", six), ("other_provinces_test.jsonl", other)):
        (adir / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def tiny_bert_model(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved policyclf BERT model (tiny random base, a few epochs on the toy data), float32 inference."""
    from policyclf.models.bert import BertClassifier

    texts, labels = toy_data(2)
    model = BertClassifier(base_model=str(tiny_bert_dir), max_length=16, window_stride=6, trainable_layers=2,
                           epochs=2, batch_size=8, learning_rate=5e-3, head_learning_rate=3e-2, patience=5,
                           validation_fraction=0.25, progress=False, seed=3, inference_dtype="float32")
    model.fit(texts, labels)
    return model.save(tmp_path_factory.mktemp("tiny_bert_model") / "model")
