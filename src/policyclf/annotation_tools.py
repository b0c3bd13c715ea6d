"""Coded batches back from annotation tools (Label Studio, doccano, plain JSONL) as standoff records.

Every import is checked against the corpus before anything is written: unknown passage ids,
text that changed since it was coded (fingerprint), unknown label or sub-code names, and a
Label Studio task with zero or several annotations are each refused with the file and the
line or task number. Records are ``passage_id``, ``text_sha1``, ``labels``, ``subcodes``,
``coder``, ``note`` (what ``data/annotated`` holds).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from policyclf.corpus import Passage, annotations_dir, read_annotations, read_jsonl, text_sha1
from policyclf.errors import DataError, PolicyclfError
from policyclf.labels import CATEGORIES, SUBCODE_TO_CATEGORY, SUBCODES

IMPORT_FORMATS = ("label-studio", "doccano", "jsonl")
LS_CATEGORIES = "categories"
LS_SUBCODES = "subcodes"


def label_studio_config() -> str:
    """The Label Studio labelling configuration for the codebook (``configs/label-studio.xml``)."""
    from policyclf.labels import CODEBOOK

    cats = "\n".join(f'    <Choice value="{c.id}" hint="{c.number} {c.name_zh}"/>' for c in CODEBOOK)
    subs = "\n".join(f'    <Choice value="{s}" hint="{c.id}: {zh}"/>' for c in CODEBOOK for s, zh in c.subcodes)
    return f"""<View>
  <Header value="$title"/>
  <Text name="heading" value="$heading"/>
  <Text name="text" value="$text"/>
  <Choices name="{LS_CATEGORIES}" toName="text" choice="multiple" showInline="false">
{cats}
  </Choices>
  <Choices name="{LS_SUBCODES}" toName="text" choice="multiple" showInline="false">
{subs}
  </Choices>
  <TextArea name="note" toName="text" maxSubmissions="1" placeholder="short reason for hard cases"/>
</View>
"""


def _label_studio_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a Label Studio JSON export ({exc})") from exc
    if not isinstance(tasks, list):
        raise DataError(f"{path}: expected a JSON list of tasks (Label Studio 'JSON' export)")
    for k, task in enumerate(tasks, 1):
        where = f"{path} task {k}" + (f" (id {task['id']})" if isinstance(task, dict) and "id" in task else "")
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise DataError(f"{where}: a task needs a 'data' object")
        anns = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        if len(anns) != 1:
            raise DataError(f"{where}: {len(anns)} annotations; exactly one per task is expected "
                            "(export after every task is coded once, or resolve duplicates in Label Studio)")
        labels: list[str] = []
        subcodes: list[str] = []
        note = ""
        for res in anns[0].get("result", []):
            value = res.get("value", {})
            if res.get("from_name") == LS_CATEGORIES:
                labels += value.get("choices", [])
            elif res.get("from_name") == LS_SUBCODES:
                subcodes += value.get("choices", [])
            elif res.get("from_name") == "note":
                note = " ".join(value.get("text", []))
        data = task["data"]
        yield where, {"passage_id": data.get("passage_id"), "text": data.get("text"), "labels": labels,
                      "subcodes": subcodes, "note": note}


def _doccano_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for lineno, rec in read_jsonl(path):
        label = rec.get("label", rec.get("labels", []))
        if not isinstance(label, list):
            raise DataError(f"{path} line {lineno}: 'label' must be a list of category names")
        yield f"{path} line {lineno}", {"passage_id": rec.get("passage_id"), "text": rec.get("text"),
                                        "labels": [x for x in label if x not in SUBCODE_TO_CATEGORY],
                                        "subcodes": [x for x in label if x in SUBCODE_TO_CATEGORY],
                                        "note": rec.get("note", "")}


def _jsonl_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for lineno, rec in read_jsonl(path):
        yield f"{path} line {lineno}", rec


def import_records(path: str | Path, fmt: str, coder: str, passages: dict[str, Passage]) -> list[dict[str, Any]]:
    """Standoff records from an annotation tool's export, checked against the corpus.

    Raises:
        DataError: naming the file and line or task, for an unknown passage id, a changed text,
            an unknown label or sub-code, a sub-code without its category, a duplicate passage,
            or a task with zero or several annotations.
    """
    path = Path(path)
    if fmt not in IMPORT_FORMATS:
        raise PolicyclfError(f"unknown format {fmt!r}; expected one of {', '.join(IMPORT_FORMATS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if not coder:
        raise PolicyclfError("--coder is required (who coded this batch)")
    reader = {"label-studio": _label_studio_records, "doccano": _doccano_records, "jsonl": _jsonl_records}[fmt]
    out: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for where, rec in reader(path):
        pid = rec.get("passage_id")
        if not pid:
            raise DataError(f"{where}: no passage_id (the task data must carry the corpus passage_id)")
        if pid not in passages:
            raise DataError(f"{where}: unknown passage_id {pid!r} — not in the corpus")
        if pid in seen:
            raise DataError(f"{where}: {pid!r} coded twice in this file (first at {seen[pid]})")
        seen[pid] = where
        corpus_sha = text_sha1(passages[pid].text)
        given = rec.get("text_sha1") or (text_sha1(rec["text"]) if isinstance(rec.get("text"), str) else None)
        if given is not None and given != corpus_sha:
            raise DataError(f"{where}: the text of {pid!r} differs from the corpus (fingerprint "
                            f"{given[:12]}… vs {corpus_sha[:12]}…); it was coded on another version — recode it")
        labels, subcodes = rec.get("labels", []), rec.get("subcodes", [])
        if not isinstance(labels, list) or not isinstance(subcodes, list):
            raise DataError(f"{where}: 'labels' and 'subcodes' must be lists")
        for lab in labels:
            if lab not in CATEGORIES:
                raise DataError(f"{where}: unknown label {lab!r} — expected one of {', '.join(CATEGORIES)}")
        for sub in subcodes:
            if sub not in SUBCODES:
                raise DataError(f"{where}: unknown sub-code {sub!r}; see the shared CODEBOOK.md")
            if SUBCODE_TO_CATEGORY[sub] not in labels:
                raise DataError(f"{where}: sub-code {sub!r} without its category {SUBCODE_TO_CATEGORY[sub]!r}")
        out.append({"passage_id": pid, "text_sha1": corpus_sha,
                    "labels": sorted(set(labels), key=CATEGORIES.index),
                    "subcodes": list(dict.fromkeys(subcodes)), "coder": coder,
                    "note": str(rec.get("note", ""))[:200]})
    if not out:
        raise DataError(f"{path}: no coded passages")
    return out


def import_to_file(path: str | Path, fmt: str, coder: str, output: str | Path, *, corpus: str | None = None,
                   root: str | Path | None = None, force: bool = False, allow_coded: bool = False) -> list[dict]:
    """``policyclf data import``: check an export and write its standoff records to ``output``.

    Passages that already have a final record under ``data/annotated`` are refused unless
    ``allow_coded`` (a second coding of them, e.g. for double coding, is written elsewhere).

    Raises:
        PolicyclfError: ``output`` exists without ``force``; see :func:`import_records`.
    """
    from policyclf.corpus import load_passages

    output = Path(output)
    if output.exists() and not force:
        raise PolicyclfError(f"{output} already exists; pass --force to overwrite it")
    passages = load_passages(corpus)
    records = import_records(path, fmt, coder, passages)
    if not allow_coded:
        adir = annotations_dir(root)
        final_files = [f for f in sorted(adir.glob("*.jsonl")) if not f.name.startswith("double_")
                       and f.resolve() != output.resolve()]
        coded = {a.passage_id: a.source for f in final_files for a in read_annotations(f, passages)}
        clash = [r["passage_id"] for r in records if r["passage_id"] in coded]
        if clash:
            raise DataError(f"{len(clash)} imported passages already have a final record "
                            f"(first: {clash[0]} at {coded[clash[0]]}); pass --allow-coded to write "
                            "them anyway (e.g. a second coder's records)")
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, output)
    return records
