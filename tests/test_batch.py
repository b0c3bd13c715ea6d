"""`policyclf label`: bad inputs, crash + resume, changed documents, spreadsheet output."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_segment import REGULATION, make_docx, make_inflating_docx, make_pdf

REPORT = "一、工作回顾\n设立科技专项资金支持企业研发。\n高校与企业联合培养专业技术人才。\n建设公共技术服务平台和孵化器。\n"


@pytest.fixture()
def model_dir(tmp_path, fake_repo, fake_corpus):
    from policyclf.models.tfidf import TfidfClassifier
    from policyclf.corpus import load_examples, load_passages

    ex = load_examples([fake_repo / "data" / "annotated" / "six_regions.jsonl"], load_passages(fake_corpus))
    model = TfidfClassifier(threshold_folds=2).fit([e.text for e in ex], [list(e.labels) for e in ex])
    return model.save(tmp_path / "model")


def run_label(docs: Path, out: Path, model: Path, *extra: str, env: dict | None = None, wait: bool = True,
              workers: int = 1):
    cmd = [sys.executable, "-m", "policyclf", "label", str(docs), "-o", str(out), "--model", str(model),
           "--quiet", "--workers", str(workers), *extra]
    full_env = {**os.environ, **(env or {})}
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=900)
    return subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def label_here(docs: Path, out: Path, model: Path) -> None:
    """The same run as `run_label`, in this process (saves a Python start where a subprocess adds nothing)."""
    from policyclf.batch import label_folder

    label_folder(docs, out, model, workers=1, progress=False)


def outputs(out: Path) -> dict[str, str]:
    return {name: (out / name).read_text(encoding="utf-8-sig")
            for name in ("passages.jsonl", "passages.csv", "documents.csv", "errors.jsonl")}


def many_docs(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        sub = folder / f"batch{i % 3}"
        sub.mkdir(exist_ok=True)
        (sub / f"doc{i:03d}.txt").write_text(REPORT.replace("十", str(i)) + f"第{i}号文件支持人才引进。\n", encoding="utf-8")
    return folder


def test_bad_inputs_never_stop_the_run(tmp_path, model_dir):
    import random

    docs = tmp_path / "docs"
    (docs / "nested").mkdir(parents=True)
    make_docx(docs / "good.docx", REGULATION)
    (docs / "nested" / "gbk.txt").write_bytes(REGULATION.encode("gbk"))
    (docs / "traditional.txt").write_text("第一條 為了促進科學技術進步，制定本條例。\n第二條 設立專項資金。\n", encoding="utf-8")
    (docs / "english.txt").write_text("The city supports joint laboratories.\nIt funds research.\n", encoding="utf-8")
    (docs / "mixed.txt").write_bytes("第一条 高校科技成果转化。\n".encode() + "第二条 设立专项资金。\n".encode("gbk"))
    (docs / "empty.txt").write_bytes(b"")
    rng = random.Random(1)
    (docs / "junk.txt").write_bytes(bytes(rng.randrange(256) for _ in range(4000)))
    (docs / "corrupt.docx").write_bytes(b"PK\x03\x04 corrupt")
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.4 broken")
    make_pdf(docs / "locked.pdf", REGULATION, password="pw")
    (docs / "huge.txt").write_bytes(("科技创新。" * 1000 + "\n").encode() * 40)  # ~0.6 MB, over the limit below
    res = run_label(docs, tmp_path / "out", model_dir, "--max-size-mb", "0.5")
    assert res.returncode == 0, res.stderr
    errors = {json.loads(line)["file"]: json.loads(line)["reason"]
              for line in (tmp_path / "out" / "errors.jsonl").read_text(encoding="utf-8").splitlines()}
    assert set(errors) == {"empty.txt", "junk.txt", "corrupt.docx", "corrupt.pdf", "locked.pdf", "huge.txt"}
    assert "password-protected" in errors["locked.pdf"] and "too large" in errors["huge.txt"]
    rows = [json.loads(line) for line in (tmp_path / "out" / "passages.jsonl").read_text(encoding="utf-8").splitlines()]
    per_doc = {}
    for r in rows:
        per_doc[r["doc"]] = per_doc.get(r["doc"], 0) + 1
    assert per_doc == {"good.docx": 4, "nested/gbk.txt": 4, "traditional.txt": 2, "english.txt": 2, "mixed.txt": 2}
    assert any(r["passage_id"] == "traditional.txt:001" for r in rows)
    assert all(len(r["scores"]) == 7 and isinstance(r["review"], bool) for r in rows)


def _shift_startxref(pdf: Path, out: Path) -> Path:
    """A copy of ``pdf`` whose startxref offset is wrong: pypdf reads it, warning as it repairs it."""
    import re

    data = pdf.read_bytes()
    i = data.rindex(b"startxref")
    offset = re.match(rb"startxref\s+(\d+)", data[i:]).group(1)
    out.write_bytes(data[:i] + data[i:].replace(offset, str(int(offset) + 7).encode(), 1))
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_reader_library_warnings_go_to_the_files_entry_not_the_terminal(tmp_path, model_dir, workers):
    """pypdf's "EOF marker not found" (and the like) land in errors.jsonl / warnings.jsonl, not on stderr."""
    docs = tmp_path / "docs"
    docs.mkdir()
    good = make_pdf(tmp_path / "good.pdf", REGULATION)
    (docs / "no-eof.pdf").write_bytes(good.read_bytes()[:-40])
    _shift_startxref(good, docs / "repaired.pdf")
    (docs / "a.txt").write_text(REPORT, encoding="utf-8")
    res = run_label(docs, tmp_path / "out", model_dir, workers=workers)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # --quiet: no progress bar, and nothing from the libraries
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [e["file"] for e in errors] == ["no-eof.pdf"]
    assert any("EOF marker not found" in w for w in errors[0]["warnings"]), errors
    warned = [json.loads(line) for line in (tmp_path / "out" / "warnings.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [w["file"] for w in warned] == ["repaired.pdf"] and all(w.startswith("pypdf: ") for w in warned[0]["warnings"])
    assert "1 read with library warnings" in res.stdout and "warnings.jsonl" in res.stdout
    docs_csv = (tmp_path / "out" / "documents.csv").read_text(encoding="utf-8-sig")
    assert "repaired.pdf" in docs_csv and "a.txt" in docs_csv


def test_a_small_docx_that_inflates_is_refused_and_the_folder_goes_on(tmp_path, model_dir):
    """Issue 23: the inflated size of a docx counts against --max-size-mb, and passages per document are capped."""
    docs = tmp_path / "docs"
    docs.mkdir()
    bomb = make_inflating_docx(docs / "bomb.docx", 40_000)  # ~3.1 MB of XML from < 60 kB on disk
    assert bomb.stat().st_size < 60_000
    (docs / "long.txt").write_text("设立科技专项资金支持企业研发。\n" * 30, encoding="utf-8")
    (docs / "a.txt").write_text(REPORT, encoding="utf-8")
    res = run_label(docs, tmp_path / "out", model_dir, "--max-size-mb", "1", "--max-passages", "25", workers=2)
    assert res.returncode == 0, res.stderr
    errors = {json.loads(line)["file"]: json.loads(line)["reason"]
              for line in (tmp_path / "out" / "errors.jsonl").read_text(encoding="utf-8").splitlines()}
    assert set(errors) == {"bomb.docx", "long.txt"}
    assert "refused before parsing: it inflates to 3." in errors["bomb.docx"] and "--max-size-mb" in errors["bomb.docx"]
    assert "more than 25 passages, the limit per document (--max-passages)" in errors["long.txt"]
    rows = [json.loads(line) for line in (tmp_path / "out" / "passages.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["doc"] for r in rows} == {"a.txt"} and len(rows) == 3


def test_crash_between_rows_and_manifest_then_resume_is_identical(tmp_path, model_dir):
    docs = many_docs(tmp_path / "docs", 30)
    label_here(docs, tmp_path / "clean", model_dir)
    crashed = run_label(docs, tmp_path / "resumed", model_dir, env={"POLICYCLF_CRASH_AFTER_DOCS": "13"})
    assert crashed.returncode == 137
    assert not (tmp_path / "resumed" / "passages.jsonl").exists()  # nothing half-written
    resumed = run_label(docs, tmp_path / "resumed", model_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert "12 unchanged and skipped" in resumed.stdout
    assert outputs(tmp_path / "resumed") == outputs(tmp_path / "clean")


def test_killed_by_signal_then_resumed_is_identical(tmp_path, model_dir):
    docs = many_docs(tmp_path / "docs", 120)
    label_here(docs, tmp_path / "clean", model_dir)
    proc = run_label(docs, tmp_path / "killed", model_dir, wait=False)
    manifest = tmp_path / "killed" / ".work" / "manifest.jsonl"
    deadline = time.time() + 120
    done_at_kill = None
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and manifest.stat().st_size > 0:
            proc.send_signal(signal.SIGKILL)
            done_at_kill = len(manifest.read_bytes().splitlines())
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert done_at_kill is not None and done_at_kill < 120
    assert not (tmp_path / "killed" / "passages.jsonl").exists()
    resumed = run_label(docs, tmp_path / "killed", model_dir)
    assert resumed.returncode == 0, resumed.stderr
    assert outputs(tmp_path / "killed") == outputs(tmp_path / "clean")


def test_changed_document_is_relabelled_and_others_skipped(tmp_path, model_dir):
    docs = many_docs(tmp_path / "docs", 6)
    label_here(docs, tmp_path / "out", model_dir)
    target = docs / "batch0" / "doc003.txt"
    target.write_text("第一条 设立科技专项资金。\n第二条 引进海外高层次人才。\n第三条 本条例自公布之日起施行。\n", encoding="utf-8")
    again = run_label(docs, tmp_path / "out", model_dir)
    assert again.returncode == 0 and "(1 documents this run, 5 unchanged and skipped)" in again.stdout
    rows = [json.loads(line) for line in (tmp_path / "out" / "passages.jsonl").read_text(encoding="utf-8").splitlines()]
    changed = [r for r in rows if r["doc"] == "batch0/doc003.txt"]
    assert [r["seq"] for r in changed] == [1, 2, 3]
    assert len(rows) == 5 * 4 + 3  # old rows of the changed document are gone


def test_xlsx_matches_csv(tmp_path, model_dir):
    from openpyxl import load_workbook

    docs = many_docs(tmp_path / "docs", 4)
    assert run_label(docs, tmp_path / "out", model_dir).returncode == 0
    wb = load_workbook(tmp_path / "out" / "labels.xlsx", read_only=True)
    for sheet, name in (("passages", "passages.csv"), ("documents", "documents.csv")):
        with (tmp_path / "out" / name).open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
        xrows = [["" if v is None else v for v in row] for row in wb[sheet].iter_rows(values_only=True)]
        assert len(xrows) == len(rows)
        for xr, cr in zip(xrows, rows):
            assert len(xr) == len(cr)
            for x, c in zip(xr, cr):
                if isinstance(x, (int, float)) and not isinstance(x, bool):
                    assert float(c) == pytest.approx(x)
                else:
                    assert str(x) == c
    docs_csv = list(csv.DictReader((tmp_path / "out" / "documents.csv").open(encoding="utf-8-sig")))
    assert len(docs_csv) == 4 and docs_csv[0]["n_passages"] == "4"
    ev = docs_csv[0]["evidence_investment_channels"]
    assert ev == "" or ev.startswith(docs_csv[0]["doc"] + ":")


def test_other_model_in_same_output_is_refused(tmp_path, model_dir):
    docs = many_docs(tmp_path / "docs", 2)
    label_here(docs, tmp_path / "out", model_dir)
    other = tmp_path / "model2"
    import shutil

    shutil.copytree(model_dir, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["saved_at"] = "2000-01-01T00:00:00+00:00"
    (other / "meta.json").write_text(json.dumps(meta))
    res = run_label(docs, tmp_path / "out", other)
    assert res.returncode == 1 and "holds a run with another model" in res.stderr


def test_ray_engine_in_local_mode_matches_local_engine_with_bert(tmp_path, tiny_bert_model):
    """Byte-identical outputs with a BERT model on documents with more passages than a batch."""
    pytest.importorskip("ray")
    docs = many_docs(tmp_path / "docs", 5)
    (docs / "long.txt").write_text("\n".join(f"第{i}条 设立科技专项资金支持企业研发和人才引进{'。' * (i % 7)}" for i in range(1, 12)),
                                   encoding="utf-8")
    (docs / "empty.txt").write_bytes(b"")
    assert run_label(docs, tmp_path / "local", tiny_bert_model, "--batch-size", "3").returncode == 0
    res = run_label(docs, tmp_path / "ray", tiny_bert_model, "--engine", "ray", "--batch-size", "3",
                    env={"RAY_ADDRESS": "", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert outputs(tmp_path / "ray") == outputs(tmp_path / "local")
    rows = [json.loads(x) for x in outputs(tmp_path / "local")["passages.jsonl"].splitlines()]
    assert sum(r["doc"] == "long.txt" for r in rows) > 3  # more passages than one batch


def test_worker_pool_gives_the_same_output(tmp_path, model_dir):
    docs = many_docs(tmp_path / "docs", 20)
    label_here(docs, tmp_path / "one", model_dir)
    res = run_label(docs, tmp_path / "two", model_dir, workers=2)
    assert res.returncode == 0, res.stderr
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")


def test_unknown_engine_is_refused(tmp_path, model_dir):
    from policyclf.batch import label_folder
    from policyclf.errors import PolicyclfError

    docs = many_docs(tmp_path / "docs", 1)
    with pytest.raises(PolicyclfError, match="engine 'spark': expected one of local, ray"):
        label_folder(docs, tmp_path / "out", model_dir, engine="spark")


def test_second_run_into_a_locked_folder_exits_naming_the_holder(tmp_path, model_dir):
    from policyclf.batch import OutputLock

    docs = many_docs(tmp_path / "docs", 2)
    out = tmp_path / "out"
    with OutputLock(out):
        res = run_label(docs, out, model_dir)
    assert res.returncode == 1
    assert "is being written by another `policyclf label` run" in res.stderr and f"pid {os.getpid()}" in res.stderr
    with OutputLock(out):  # released: the folder can be locked again
        pass


def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path, model_dir):
    docs = many_docs(tmp_path / "docs", 3)
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from policyclf.batch import OutputLock; "
        f"lock = OutputLock(Path({str(out)!r})); lock.acquire(); print('locked', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    assert run_label(docs, out, model_dir).returncode == 1  # held
    holder.kill()
    holder.wait()
    assert "pid" in (out / ".work" / "lock").read_text()  # the dead holder's record is still there
    res = run_label(docs, out, model_dir)
    assert res.returncode == 0, res.stderr


def test_two_concurrent_runs_never_duplicate_or_lose_rows(tmp_path, model_dir):
    docs = many_docs(tmp_path / "docs", 40)
    label_here(docs, tmp_path / "clean", model_dir)
    first = run_label(docs, tmp_path / "out", model_dir, wait=False)
    time.sleep(0.3)
    second = run_label(docs, tmp_path / "out", model_dir, wait=False)
    codes = [first.wait(timeout=300), second.wait(timeout=300)]
    assert 0 in codes and set(codes) <= {0, 1}
    if 1 in codes:
        err = (first if codes[0] == 1 else second).stderr.read().decode()
        assert "is being written by another" in err
    assert outputs(tmp_path / "out") == outputs(tmp_path / "clean")


def test_run_json_records_device_and_precision(tmp_path, tiny_bert_model):
    docs = many_docs(tmp_path / "docs", 2)
    res = run_label(docs, tmp_path / "out", tiny_bert_model, "--precision", "float32", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    run = json.loads((tmp_path / "out" / ".work" / "run.json").read_text())
    assert run["runtime"]["precision"] == "float32" and run["runtime"]["precision_reason"] == "set explicitly"
    assert run["runtime"]["device"] == "cpu" and "flags" in run["runtime"]["cpu"]


def _docs_for_scoring():
    from policyclf.scoring import DocResult

    texts = [f"第{i}条 设立科技专项资金支持企业研发和人才引进{'。' * (i % 7)}" for i in range(1, 12)]
    return [DocResult("a.txt", "1", texts[:2], [1, 2]), DocResult("bad.txt", "", error="bad.txt: unreadable"),
            DocResult("b.txt", "2", texts[2:9], list(range(1, 8))), DocResult("c.txt", "3", texts[9:], [1, 2])]


@pytest.mark.parametrize("dtype, together", [("bfloat16", True), ("float32", False), ("int8", False)])
def test_documents_are_scored_together_only_where_scores_are_exact_across_batches(tiny_bert_model, dtype, together):
    """bf16 (fixed batch shapes): one pass over all documents, rows bit-identical to scoring each alone;
    float32 and int8: every model call holds one document's passages only."""
    from policyclf.models.base import load_model
    from policyclf.scoring import documents_rows

    model = load_model(tiny_bert_model, inference_dtype=dtype)
    docs = _docs_for_scoring()
    calls = []
    original = model.predict_proba

    def spy(texts, headings=None):
        calls.append({d.rel for d in docs for t in texts if t in d.texts})
        return original(texts, headings)

    model.predict_proba = spy
    rows = documents_rows(model, docs, batch_size=64)
    assert [len(r) for r in rows] == [2, 0, 7, 2]
    assert [r["passage_id"] for r in rows[2]] == [f"b.txt:{s:03d}" for s in range(1, 8)]
    assert len(calls) == (1 if together else 3) and (together or all(len(c) == 1 for c in calls))
    alone = [documents_rows(model, [d], batch_size=64)[0] for d in docs]
    assert rows == alone  # the same output whatever else was in the run
