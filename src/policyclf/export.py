"""``policyclf data export``: the final annotations joined with corpus text, as CSV, JSONL or a
Hugging Face ``DatasetDict`` (train: the six regions, pools included; test: the unseen-province set).

The output holds corpus text: write it outside the repository.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from policyclf.corpus import FINAL_FILES, Example, annotations_dir, load_examples, load_passages
from policyclf.errors import PolicyclfError
from policyclf.labels import CATEGORIES

EXPORT_FORMATS = ("jsonl", "csv", "hf")
TEST_FILE = "other_provinces_test.jsonl"


def rows(examples: list[Example]) -> list[dict[str, Any]]:
    return [{"passage_id": e.passage_id, "doc_id": e.passage.doc_id, "region": e.passage.region,
             "doc_type": e.passage.doc_type, "pool": e.passage.pool, "seq": e.passage.seq,
             "heading": e.passage.heading, "labels": list(e.labels), "subcodes": list(e.subcodes),
             "text": e.text} for e in examples]


def hf_dataset(train: list[Example], test: list[Example]):  # -> datasets.DatasetDict
    """Train/test ``DatasetDict`` with ``labels`` as ``Sequence(ClassLabel(the seven categories))``."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    features = Features({"passage_id": Value("string"), "doc_id": Value("string"), "region": Value("string"),
                         "doc_type": Value("string"), "pool": Value("string"), "seq": Value("int32"),
                         "heading": Value("string"), "labels": Sequence(ClassLabel(names=list(CATEGORIES))),
                         "subcodes": Sequence(Value("string")), "text": Value("string")})

    def build(examples: list[Example]):
        data = rows(examples)
        for r in data:
            r["labels"] = [CATEGORIES.index(x) for x in r["labels"]]
        return Dataset.from_list(data, features=features)

    return DatasetDict({"train": build(train), "test": build(test)})


def export_annotations(output: str | Path, fmt: str | None = None, *, corpus: str | None = None,
                       root: str | Path | None = None, force: bool = False) -> int:
    """Write the export; returns the number of passages written.

    Raises:
        PolicyclfError: an output that exists without ``force``, or an unknown format.
    """
    output = Path(output)
    fmt = fmt or output.suffix.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise PolicyclfError(f"{output}: unknown export format {fmt!r}; use a .jsonl or .csv name, or --format "
                             f"one of {', '.join(EXPORT_FORMATS)}")
    if output.exists() and not force:
        raise PolicyclfError(f"{output} already exists; pass --force to overwrite it")
    passages = load_passages(corpus)
    adir = annotations_dir(root)
    files = [adir / f for f in FINAL_FILES if (adir / f).is_file()]
    examples = load_examples(files, passages)
    if fmt == "hf":
        test = [e for e in examples if e.passage.pool == "other_provinces"]
        train = [e for e in examples if e.passage.pool != "other_provinces"]
        hf_dataset(train, test).save_to_disk(str(output))
        return len(examples)
    data = rows(examples)
    if fmt == "csv":
        with output.open("w", encoding="utf-8-sig", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(data[0]) if data else ["passage_id"])
            w.writeheader()
            for r in data:
                w.writerow({**r, "labels": ";".join(r["labels"]), "subcodes": ";".join(r["subcodes"])})
    else:
        with output.open("w", encoding="utf-8") as f:
            for r in data:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return len(data)
