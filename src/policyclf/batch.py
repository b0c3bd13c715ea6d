"""Batch labelling of a folder of documents: resumable, streaming, nothing lost.

State lives in ``OUT_DIR/.work/``: ``journal.jsonl`` holds the passage rows of finished
documents and ``manifest.jsonl`` one line per finished document (relative path, content sha1,
status, byte range of its rows in the journal). A document is committed only once its rows are
flushed and its manifest line written; on restart the journal is cut back to the last committed
byte, documents whose content hash is unchanged are skipped and changed ones are relabelled.
The final files are rebuilt from the journal at the end and written atomically.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.errors import PolicyclfError
from policyclf.labels import CATEGORIES
from policyclf.predict import csv_record
from policyclf.scoring import DocResult, documents_rows, file_sha1, process_document
from policyclf.segment import DEFAULT_MAX_BYTES, DEFAULT_MAX_PASSAGES, find_documents

WORK = ".work"
ENGINES = ("local", "ray")
LOCK_FILE = "lock"
_CRASH_AFTER = int(os.environ.get("POLICYCLF_CRASH_AFTER_DOCS", "0"))  # tests only: simulate a crash
XLSX_MAX_ROWS = 1_048_575


class Journal:
    """Append-only rows + manifest with crash-safe commits."""

    def __init__(self, out: Path) -> None:
        self.dir = out / WORK
        self.dir.mkdir(parents=True, exist_ok=True)
        self.rows_path = self.dir / "journal.jsonl"
        self.manifest_path = self.dir / "manifest.jsonl"
        self.done: dict[str, dict[str, Any]] = {}
        self.committed = 0
        end = 0
        if self.manifest_path.exists():
            good = []
            with self.manifest_path.open("rb") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        break  # a torn last line from a crash: everything after it is uncommitted
                    good.append(line)
                    self.done[entry["doc"]] = entry
                    end = max(end, entry.get("end", 0))
            with self.manifest_path.open("wb") as f:
                f.writelines(good)
        with self.rows_path.open("ab") as f:
            f.truncate(end)
        self.rows = self.rows_path.open("ab")
        self.manifest = self.manifest_path.open("ab")

    def commit(self, rel: str, sha1: str, rows: Sequence[dict[str, Any]], error: str | None,
               warnings: Sequence[str] = ()) -> None:
        start = self.rows.tell()
        for row in rows:
            self.rows.write((json.dumps(row, ensure_ascii=False) + "\n").encode())
        self.rows.flush()
        self.committed += 1
        if self.committed == _CRASH_AFTER:  # test hook: die between the rows and their manifest line
            os._exit(137)
        entry = {"doc": rel, "sha1": sha1, "status": "error" if error else "ok", "start": start,
                 "end": self.rows.tell(), "n": len(rows)}
        if error:
            entry["reason"] = error
        if warnings:
            entry["warnings"] = list(warnings)
        self.manifest.write((json.dumps(entry, ensure_ascii=False) + "\n").encode())
        self.manifest.flush()
        self.done[rel] = entry

    def sync(self) -> None:
        for f in (self.rows, self.manifest):
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        self.sync()
        self.rows.close()
        self.manifest.close()

    def iter_rows(self, entry: dict[str, Any]) -> Iterator[dict[str, Any]]:
        with self.rows_path.open("rb") as f:
            f.seek(entry["start"])
            data = f.read(entry["end"] - entry["start"])
        for line in data.splitlines():
            yield json.loads(line)


class OutputLock:
    """An exclusive lock on an output folder, so two runs never write one folder at once.

    Held with ``fcntl.flock`` on ``OUT/.work/lock``: the kernel drops it when the holder dies,
    so a lock left by a killed run is simply taken over. The file records the holder's pid for
    the message a second run prints.
    """

    def __init__(self, out: Path) -> None:
        self.path = out / WORK / LOCK_FILE
        self.handle: Any = None

    def acquire(self) -> None:
        import fcntl
        import time

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise PolicyclfError(f"{self.path.parent.parent} is being written by another `policyclf label` run "
                                 f"({holder}); wait for it to finish or use another output folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the file drops the flock
            self.handle = None

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


@dataclass
class LabelResult:
    out: Path
    documents: int
    passages: int
    errors: int
    skipped_unchanged: int
    labelled_now: int
    warned: int = 0  # documents read with messages from the reader libraries (warnings.jsonl)


def _atomic_writer(path: Path, newline: str | None = None, encoding: str = "utf-8"):
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    return os.fdopen(fd, "w", encoding=encoding, newline=newline), Path(tmp)


def label_folder(input_dir: str | Path, out_dir: str | Path, model_dir: str | Path | None = None, *,
                 workers: int = 2, batch_size: int = 256, review_margin: float = 0.1,
                 max_bytes: int = DEFAULT_MAX_BYTES, progress: bool = True, engine: str = "local",
                 group_size: int | None = None, device: str | None = None,
                 precision: str | None = None, max_passages: int = DEFAULT_MAX_PASSAGES) -> LabelResult:
    """Label every document under ``input_dir``; resumable; see the module docstring.

    A file over ``max_bytes`` (on disk, once inflated, or as text; see
    :func:`policyclf.segment.read_document`) or with more than ``max_passages`` passages is reported
    in ``errors.jsonl`` and the run goes on.

    Raises:
        PolicyclfError: no such folder, no documents, or a bad model directory.
    """
    from policyclf.models.base import load_model
    from policyclf.predict import default_model_dir

    input_dir, out = Path(input_dir), Path(out_dir)
    if engine not in ENGINES:
        raise PolicyclfError(f"engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if not input_dir.is_dir():
        raise PolicyclfError(f"{input_dir}: not a folder of documents")
    paths = find_documents(input_dir)
    if not paths:
        raise PolicyclfError(f"{input_dir}: no documents (.txt .md .docx .html .pdf) in this folder")
    model_path = Path(model_dir or default_model_dir())
    model = load_model(model_path, device=device, inference_dtype=precision)
    out.mkdir(parents=True, exist_ok=True)
    with OutputLock(out):
        return _label_locked(input_dir, out, paths, model, model_path, workers=workers, batch_size=batch_size,
                             review_margin=review_margin, max_bytes=max_bytes, progress=progress, engine=engine,
                             group_size=group_size, max_passages=max_passages)


def _label_locked(input_dir: Path, out: Path, paths: list[Path], model: Any, model_path: Path, *, workers: int,
                  batch_size: int, review_margin: float, max_bytes: int, progress: bool, engine: str,
                  group_size: int | None, max_passages: int = DEFAULT_MAX_PASSAGES) -> LabelResult:
    """The body of :func:`label_folder`, run while holding the output folder's lock."""
    run_info = {"model": str(model_path.resolve()), "model_saved_at": json.loads(
        (model_path / "meta.json").read_text(encoding="utf-8")).get("saved_at"), "review_margin": review_margin}
    info_path = out / WORK / "run.json"
    if info_path.exists():
        earlier = json.loads(info_path.read_text())
        if earlier.get("settings", earlier) != run_info:
            raise PolicyclfError(f"{out} holds a run with another model or settings; use a new output folder "
                                 "or delete it to start over")
    journal = Journal(out)
    # settings decide whether a run may resume; runtime (device, precision, CPU) is recorded for the record
    info_path.write_text(json.dumps({"settings": run_info, "runtime": model.runtime_info()}, indent=1))
    rels = [p.relative_to(input_dir).as_posix() for p in paths]
    todo, skipped = [], 0
    for rel, path in zip(rels, paths):
        entry = journal.done.get(rel)
        if entry and entry["sha1"] == _sha1_or_empty(path):
            skipped += 1
        else:
            todo.append(rel)
    thresholds = model.thresholds_
    if engine == "ray":
        from policyclf.ray_engine import label_with_ray

        runtime = model.runtime_info()
        for res, rows in label_with_ray(str(input_dir), todo, model_path, max_bytes, batch_size,
                                        {"device": runtime["device"], "inference_dtype": runtime["precision"]},
                                        max_passages=max_passages):
            journal.commit(res.rel, res.sha1, [_with_review(r, thresholds, review_margin) for r in rows], res.error,
                           res.warnings)
        journal.sync()
    else:
        _label_local(input_dir, todo, model, journal, workers, batch_size, review_margin, max_bytes, progress,
                     group_size or max(8, 8 * workers), max_passages)
    journal.close()
    counts = write_outputs(out, journal, rels)
    return LabelResult(out, counts["documents"], counts["passages"], counts["errors"], skipped, len(todo),
                       counts["warned"])


def _sha1_or_empty(path: Path) -> str:
    try:
        return file_sha1(path)
    except OSError:
        return ""


def _with_review(row: dict[str, Any], thresholds: np.ndarray, margin: float) -> dict[str, Any]:
    near = [c for c, t in zip(CATEGORIES, thresholds) if abs(row["scores"][c] - t) < margin]
    row["review"] = bool(near)
    row["near_threshold"] = near
    return row


def _label_local(input_dir: Path, todo: list[str], model: Any, journal: Journal, workers: int, batch_size: int,
                 review_margin: float, max_bytes: int, progress: bool, group_size: int,
                 max_passages: int = DEFAULT_MAX_PASSAGES) -> None:
    """Segment in worker processes (one group ahead) while the model scores the current group."""
    import multiprocessing as mp

    from tqdm import tqdm

    groups = [todo[i:i + group_size] for i in range(0, len(todo), group_size)]
    bar = tqdm(total=len(todo), unit="doc", desc="labelling", disable=not progress, file=sys.stderr)
    pool = mp.get_context("spawn").Pool(workers) if workers > 1 else None

    def submit(group: list[str]):
        args = [(str(input_dir), rel, max_bytes, max_passages) for rel in group]
        return pool.map_async(process_document, args) if pool else args

    try:
        pending = submit(groups[0]) if groups else None
        for k, group in enumerate(groups):
            results = pending.get() if pool else [process_document(a) for a in pending]
            pending = submit(groups[k + 1]) if k + 1 < len(groups) else None
            _score_and_commit(results, model, journal, batch_size, review_margin)
            journal.sync()
            bar.update(len(group))
            bar.set_postfix(passages=sum(len(r.texts) for r in results))
    finally:
        bar.close()
        if pool:
            pool.terminate()


def _score_and_commit(results: list[DocResult], model: Any, journal: Journal, batch_size: int,
                      review_margin: float) -> None:
    """Score a group of documents (see :func:`policyclf.scoring.documents_rows`), then commit each."""
    for r, doc_rows in zip(results, documents_rows(model, results, batch_size)):
        rows = [_with_review(row, model.thresholds_, review_margin) for row in doc_rows]
        journal.commit(r.rel, r.sha1, rows, r.error, r.warnings)


DOC_COLUMNS = ["doc", "sha1", "n_passages", "n_review", "labels",
               *[f"{k}_{c}" for c in CATEGORIES for k in ("n", "max", "evidence")]]


def document_summary(rel: str, sha1: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One documents.csv row: counts and max score per category, top evidence passage per category."""
    rec: dict[str, Any] = {"doc": rel, "sha1": sha1, "n_passages": len(rows),
                           "n_review": sum(1 for r in rows if r.get("review"))}
    present = []
    for c in CATEGORIES:
        labelled = [r for r in rows if c in r["labels"]]
        rec[f"n_{c}"] = len(labelled)
        rec[f"max_{c}"] = max((r["scores"][c] for r in rows), default=0.0)
        rec[f"evidence_{c}"] = max(labelled, key=lambda r: r["scores"][c])["passage_id"] if labelled else ""
        if labelled:
            present.append(c)
    rec["labels"] = ";".join(present)
    return rec


PASSAGE_COLUMNS = ["passage_id", "doc", "seq", "labels", "review", "near_threshold",
                   *[f"score_{c}" for c in CATEGORIES]]


def _passage_csv(row: dict[str, Any]) -> dict[str, Any]:
    return {**csv_record(row), "review": row.get("review", False), "near_threshold": ";".join(row.get("near_threshold", []))}


def write_outputs(out: Path, journal: Journal, rels: list[str]) -> dict[str, int]:
    """Rebuild passages.jsonl, passages.csv, documents.csv, errors.jsonl, warnings.jsonl and labels.xlsx
    from the journal. What reader libraries said about a file goes into its errors.jsonl entry (unreadable
    files) or into warnings.jsonl (files that were labelled), never onto the terminal."""
    files = {name: _atomic_writer(out / name, newline="" if name.endswith(".csv") else None,
                                  encoding="utf-8-sig" if name.endswith(".csv") else "utf-8")
             for name in ("passages.jsonl", "passages.csv", "documents.csv", "errors.jsonl", "warnings.jsonl")}
    pcsv = csv.DictWriter(files["passages.csv"][0], fieldnames=PASSAGE_COLUMNS)
    dcsv = csv.DictWriter(files["documents.csv"][0], fieldnames=DOC_COLUMNS)
    pcsv.writeheader()
    dcsv.writeheader()
    counts = {"documents": 0, "passages": 0, "errors": 0, "warned": 0}
    for rel in sorted(rels):
        entry = journal.done.get(rel)
        if entry is None:
            continue
        notes = {"warnings": entry["warnings"]} if entry.get("warnings") else {}
        if entry["status"] == "error":
            files["errors.jsonl"][0].write(json.dumps({"file": rel, "reason": entry["reason"], **notes},
                                                      ensure_ascii=False) + "\n")
            counts["errors"] += 1
            continue
        if notes:
            files["warnings.jsonl"][0].write(json.dumps({"file": rel, **notes}, ensure_ascii=False) + "\n")
            counts["warned"] += 1
        rows = list(journal.iter_rows(entry))
        for row in rows:
            files["passages.jsonl"][0].write(json.dumps(row, ensure_ascii=False) + "\n")
            pcsv.writerow(_passage_csv(row))
        dcsv.writerow(document_summary(rel, entry["sha1"], rows))
        counts["documents"] += 1
        counts["passages"] += len(rows)
    for name, (handle, tmp) in files.items():
        handle.close()
        os.replace(tmp, out / name)
    if counts["passages"] <= XLSX_MAX_ROWS:
        write_xlsx(out)
    return counts


def write_xlsx(out: Path) -> None:
    """labels.xlsx with the two CSV tables as sheets (same columns and values)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    for sheet, name in (("passages", "passages.csv"), ("documents", "documents.csv")):
        ws = wb.create_sheet(sheet)
        with (out / name).open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            ws.append(header)
            for row in reader:
                ws.append([_cell(v) for v in row])
    fd, tmp = tempfile.mkstemp(prefix=".labels.xlsx.", dir=out)
    os.close(fd)
    wb.save(tmp)
    os.replace(tmp, out / "labels.xlsx")


def _cell(value: str) -> Any:
    """Numbers as numbers so spreadsheets can sort and filter them."""
    try:
        return int(value) if value.isdigit() else float(value) if value and value[0] in "0123456789.-" else value
    except ValueError:
        return value
