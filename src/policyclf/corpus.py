"""Reading the passage corpus and the standoff annotations, and joining them.

The corpus (``passages.jsonl``, ``documents.jsonl``) lives outside the repository; the
repository keeps only standoff records (passage id, labels, sha1 of the coded text). Every
join checks that the fingerprint still matches the corpus text.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from policyclf.errors import DataError
from policyclf.labels import CATEGORIES, SUBCODE_TO_CATEGORY

CORPUS_ENV = "POLICYCLF_CORPUS"
HOME_ENV = "POLICYCLF_HOME"
SOURCE_CHECKOUT = Path(__file__).resolve().parents[2]  # meaningful only in an editable install
FINAL_FILES = ("six_regions.jsonl", "six_regions_pool.jsonl", "extension_pool.jsonl", "other_provinces_test.jsonl")
DOUBLE_CODED_FILE = "double_coded.jsonl"  # one record per (passage, coder); files named double_* alike
REGIONS = ("beijing", "shanghai", "guangdong", "zhejiang", "jiangsu", "shandong")
TEST_ONLY_POOL = "other_provinces"  # the unseen-province test set: never trained on
# the four sources of the v3 extension pool: (national?, document type)
EXTENSION_POOL = "extension_pool"
EXTENSION_SOURCES = {"provincial_laws": (False, "regulation"), "national_laws": (True, "regulation"),
                     "provincial_work_reports": (False, "work_report"), "state_council_reports": (True, "work_report")}
# coding sets: (double-coded records, final records, agreement file) under data/annotated
CODING_SETS = {
    "six_regions": ("double_coded.jsonl", "six_regions.jsonl", "agreement.json"),
    "pool": ("double_coded_pool.jsonl", "six_regions_pool.jsonl", "agreement_pool.json"),
    "extension": ("double_coded_extension.jsonl", "extension_pool.jsonl", "agreement_extension.json"),
}
ANNOTATION_FIELDS = ("passage_id", "text_sha1", "labels", "subcodes", "coder", "note")


@dataclass(frozen=True)
class Passage:
    """One corpus passage (an article of a regulation or a chunk of a work report)."""

    passage_id: str
    doc_id: str
    region: str
    doc_type: str
    pool: str
    seq: int
    heading: str
    text: str


def extension_source(passage: Passage) -> str | None:
    """Which of :data:`EXTENSION_SOURCES` an ``extension_pool`` passage comes from (None for other pools)."""
    if passage.pool != EXTENSION_POOL:
        return None
    key = (passage.region == "national", passage.doc_type)
    return next(name for name, k in EXTENSION_SOURCES.items() if k == key)


@dataclass(frozen=True)
class Annotation:
    """One standoff annotation record, with where it came from (for error messages)."""

    passage_id: str
    text_sha1: str
    labels: tuple[str, ...]
    subcodes: tuple[str, ...]
    coder: str
    note: str = ""
    round: str = ""  # the coding round of a pool record (empty for the v1 sets)
    source: str = field(default="", compare=False)


@dataclass(frozen=True)
class Example:
    """An annotated passage: corpus fields joined with its final labels."""

    passage: Passage
    labels: tuple[str, ...]
    subcodes: tuple[str, ...]

    @property
    def passage_id(self) -> str:
        return self.passage.passage_id

    @property
    def text(self) -> str:
        return self.passage.text


def text_sha1(text: str) -> str:
    """Fingerprint of a passage text as coded (sha1 of its UTF-8 bytes)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def project_root() -> Path:
    """The project folder that holds ``data/annotated`` and ``models/``.

    ``$POLICYCLF_HOME`` if set; else the working directory or its nearest parent that has
    ``data/annotated`` or ``models``; else the source checkout of an editable install; else the
    working directory.
    """
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV])
    cwd = Path.cwd()
    for cand in (cwd, *cwd.parents, SOURCE_CHECKOUT):
        if (cand / "data" / "annotated").is_dir() or (cand / "models").is_dir():
            return cand
    return cwd


def resolve_corpus_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """Find the corpus: ``path``, else ``$POLICYCLF_CORPUS``, else ``../shared/corpus`` beside the project.

    Raises:
        DataError: if the chosen directory has no ``passages.jsonl``.
    """
    if path:
        candidates = [Path(path)]
    elif os.environ.get(CORPUS_ENV):
        candidates = [Path(os.environ[CORPUS_ENV])]
    else:
        candidates = [project_root().parent / "shared" / "corpus"]
        candidates += [p.parent / "shared" / "corpus" for p in [Path.cwd(), *Path.cwd().parents]]
    for cand in candidates:
        if (cand / "passages.jsonl").is_file():
            return cand
    raise DataError(
        f"no corpus found at {candidates[0]} (expected passages.jsonl there); "
        f"pass --corpus PATH or set {CORPUS_ENV}"
    )


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line of a JSON-lines file (a BOM is allowed).

    Raises:
        DataError: naming file and line, for an unreadable file, invalid JSON or a non-object line.
    """
    try:
        handle = path.open(encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    with handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} line {lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise DataError(f"{path} line {lineno}: expected a JSON object")
            yield lineno, record


def load_passages(corpus_dir: str | os.PathLike[str] | None = None) -> dict[str, Passage]:
    """All corpus passages keyed by ``passage_id``, in file order."""
    path = resolve_corpus_dir(corpus_dir) / "passages.jsonl"
    out: dict[str, Passage] = {}
    for lineno, rec in read_jsonl(path):
        try:
            p = Passage(**{k: rec[k] for k in Passage.__dataclass_fields__})
        except KeyError as exc:
            raise DataError(f"{path} line {lineno}: missing field {exc.args[0]!r}") from exc
        out[p.passage_id] = p
    if not out:
        raise DataError(f"{path}: no passages")
    return out


def load_documents(corpus_dir: str | os.PathLike[str] | None = None) -> dict[str, dict]:
    """Document records of ``documents.jsonl`` keyed by ``doc_id``."""
    path = resolve_corpus_dir(corpus_dir) / "documents.jsonl"
    return {rec["doc_id"]: rec for _, rec in read_jsonl(path)}


def read_annotations(
    path: str | os.PathLike[str],
    passages: dict[str, Passage],
    *,
    final: bool = True,
) -> list[Annotation]:
    """Read and validate one annotation file against the corpus.

    Args:
        path: a ``.jsonl`` file of standoff records.
        passages: the corpus, from :func:`load_passages`.
        final: if true, a passage may have only one record; otherwise one per coder.

    Raises:
        DataError: naming file, line and value, for an unknown passage id, an unknown label or
            sub-code, a sub-code without its category, a duplicate record, or a fingerprint that
            no longer matches the corpus text.
    """
    path = Path(path)
    seen: dict[tuple[str, ...], int] = {}
    records = []
    for lineno, rec in read_jsonl(path):
        where = f"{path} line {lineno}"
        missing = [k for k in ("passage_id", "text_sha1", "labels") if k not in rec]
        if missing:
            raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
        pid = rec["passage_id"]
        if pid not in passages:
            raise DataError(f"{where}: unknown passage_id {pid!r} — not in the corpus")
        labels, subcodes = rec["labels"], rec.get("subcodes", [])
        if not isinstance(labels, list) or not isinstance(subcodes, list):
            raise DataError(f"{where}: 'labels' and 'subcodes' must be lists")
        for label in labels:
            if label not in CATEGORIES:
                raise DataError(
                    f"{where}: unknown label {label!r} — expected one of {', '.join(CATEGORIES)}; "
                    "see the shared CODEBOOK.md"
                )
        for sub in subcodes:
            if sub not in SUBCODE_TO_CATEGORY:
                raise DataError(f"{where}: unknown sub-code {sub!r}; see the shared CODEBOOK.md")
            if SUBCODE_TO_CATEGORY[sub] not in labels:
                raise DataError(
                    f"{where}: sub-code {sub!r} without its category "
                    f"{SUBCODE_TO_CATEGORY[sub]!r} in labels"
                )
        coder = str(rec.get("coder", ""))
        key = (pid,) if final else (pid, coder)
        if key in seen:
            raise DataError(f"{where}: duplicate record for {pid!r} (first at line {seen[key]})")
        seen[key] = lineno
        expected = text_sha1(passages[pid].text)
        if rec["text_sha1"] != expected:
            raise DataError(
                f"{where}: text_sha1 of {pid!r} does not match the corpus text "
                f"(record {rec['text_sha1'][:12]}…, corpus {expected[:12]}…); "
                "the passage changed since it was coded — recode it"
            )
        records.append(Annotation(
            passage_id=pid, text_sha1=rec["text_sha1"],
            labels=tuple(sorted(labels, key=CATEGORIES.index)),
            subcodes=tuple(subcodes), coder=coder, note=str(rec.get("note", "")),
            round=str(rec.get("round", "")), source=where,
        ))
    return records


def annotations_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """``data/annotated`` of ``root`` (default: :func:`project_root`)."""
    return Path(root or project_root()) / "data" / "annotated"


def load_examples(
    files: Sequence[str | os.PathLike[str]],
    passages: dict[str, Passage],
    regions: Iterable[str] | None = None,
    rounds: Iterable[str] | None = None,
    pools: Iterable[str] | None = None,
) -> list[Example]:
    """Join final annotation files with corpus text.

    Args:
        regions: keep only these regions (default: all).
        rounds: keep only records of these coding rounds, plus records without a round
            (the v1 sets); default: all records.
        pools: keep only passages of these corpus pools (default: all).
    """
    keep = set(regions) if regions else None
    keep_pools = set(pools) if pools else None
    keep_rounds = set(rounds) if rounds is not None else None
    seen: dict[str, str] = {}
    examples = []
    for f in files:
        for ann in read_annotations(f, passages, final=True):
            if ann.passage_id in seen:
                raise DataError(f"{ann.source}: {ann.passage_id!r} also has a final record in {seen[ann.passage_id]}")
            seen[ann.passage_id] = ann.source
            p = passages[ann.passage_id]
            if keep_rounds is not None and ann.round and ann.round not in keep_rounds:
                continue
            if keep_pools is not None and p.pool not in keep_pools:
                continue
            if keep is None or p.region in keep:
                examples.append(Example(p, ann.labels, ann.subcodes))
    return examples


def training_fingerprint(examples: Sequence[Example]) -> str:
    """sha1 over (passage id, text sha1, labels) of the training examples, order-independent."""
    h = hashlib.sha1()
    for e in sorted(examples, key=lambda e: e.passage_id):
        h.update(f"{e.passage_id}\t{text_sha1(e.text)}\t{','.join(e.labels)}\n".encode())
    return h.hexdigest()


@dataclass
class CheckReport:
    """What ``policyclf data check`` found."""

    files: dict[str, int]
    counts: dict[str, Counter]  # region -> Counter(category), plus "_n" -> passages
    coverage: dict[str, tuple[int, int]]  # pool -> (annotated, in corpus)
    by_source: dict[tuple[str, str, str], Counter]  # (pool, region, doc_type) -> Counter as in counts


def check_annotations(
    root: str | os.PathLike[str] | None = None,
    corpus_dir: str | os.PathLike[str] | None = None,
) -> CheckReport:
    """Validate every annotation file under ``data/annotated`` and count labels per region.

    Raises:
        DataError: for the first invalid record found (see :func:`read_annotations`).
    """
    adir = annotations_dir(root)
    passages = load_passages(corpus_dir)
    if not adir.is_dir():
        raise DataError(f"{adir}: no annotation directory")
    files: dict[str, int] = {}
    finals = [adir / f for f in FINAL_FILES if (adir / f).is_file()]
    for path in sorted(adir.glob("*.jsonl")):
        final = path.name in FINAL_FILES or not path.name.startswith("double_")
        files[path.name] = len(read_annotations(path, passages, final=final))
    examples = load_examples(finals, passages)
    counts: dict[str, Counter] = {}
    by_source: dict[tuple[str, str, str], Counter] = {}
    for e in examples:
        for c in (counts.setdefault(e.passage.region, Counter()),
                  by_source.setdefault((e.passage.pool, e.passage.region, e.passage.doc_type), Counter())):
            c["_n"] += 1
            c.update(e.labels)
            if not e.labels:
                c["_none"] += 1
    pool_total = Counter(p.pool for p in passages.values())
    pool_done = Counter(e.passage.pool for e in examples)
    coverage = {pool: (pool_done[pool], pool_total[pool]) for pool in sorted(pool_total)}
    return CheckReport(files=files, counts=counts, coverage=coverage, by_source=dict(sorted(by_source.items())))


def compute_agreement(double_file: str | os.PathLike[str], final_file: str | os.PathLike[str],
                      corpus_dir: str | os.PathLike[str] | None = None) -> dict:
    """Agreement of coders A and B on the double-coded passages, against the final records.

    Raises:
        DataError: invalid records, or a double-coded passage without both an A and a B record
            or without a final record.
    """
    from policyclf.metrics import agreement_table

    passages = load_passages(corpus_dir)
    double = read_annotations(double_file, passages, final=False)
    final = {a.passage_id: a for a in read_annotations(final_file, passages, final=True)}
    by_pid: dict[str, dict[str, Annotation]] = {}
    for ann in double:
        if ann.coder not in ("A", "B"):
            raise DataError(f"{ann.source}: coder {ann.coder!r} — double-coded records are by 'A' or 'B'")
        by_pid.setdefault(ann.passage_id, {})[ann.coder] = ann
    ids = sorted(by_pid)
    for pid in ids:
        if len(by_pid[pid]) != 2:
            raise DataError(f"{double_file}: {pid} has only coder {list(by_pid[pid])}; both A and B are needed")
        if pid not in final:
            raise DataError(f"{final_file}: no final record for double-coded passage {pid}")
    result = agreement_table([by_pid[p]["A"].labels for p in ids], [by_pid[p]["B"].labels for p in ids],
                             [final[p].labels for p in ids])
    rounds = sorted({by_pid[p]["A"].round for p in ids} - {""})
    if rounds:
        result["per_round"] = {}
        for r in rounds:
            sub = [p for p in ids if by_pid[p]["A"].round == r]
            part = agreement_table([by_pid[p]["A"].labels for p in sub], [by_pid[p]["B"].labels for p in sub],
                                   [final[p].labels for p in sub])
            part["overall"]["adjudicated"] = sum(1 for p in sub if final[p].coder == "adjudicated")
            result["per_round"][r] = part
    strata = Counter((passages[p].region, passages[p].doc_type) for p in ids)
    result["overall"]["strata"] = {f"{r}/{t}": n for (r, t), n in sorted(strata.items())}
    result["overall"]["adjudicated"] = sum(1 for p in ids if final[p].coder == "adjudicated")
    return result
