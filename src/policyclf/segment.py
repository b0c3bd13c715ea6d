"""Turning a raw document (txt, md, docx, html, pdf) into passages cut the way the corpus is cut.

Regulations become one passage per article (第X条 with all its paragraphs); other text becomes
one passage per paragraph, and paragraphs over 300 characters are cut at sentence ends into
chunks of at most 300 characters. Traditional characters pass through unchanged.
"""

from __future__ import annotations

import codecs
import logging
import re
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from policyclf.errors import DocumentError

MAX_CHUNK = 300
SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".docx", ".html", ".htm", ".pdf")
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
# Limits against files that are small on disk but large once read (a .docx whose word/document.xml
# inflates a thousandfold, a PDF of compressed text streams), all derived from the on-disk limit
# (--max-size-mb): an archive member may inflate to at most max_bytes, all members together to
# ARCHIVE_FACTOR * max_bytes (sizes from the zip directory, checked before anything is parsed; Python's
# zipfile never inflates a member past its declared size), and the text read to at most max_bytes
# characters. The largest corpus document has 127 passages; DEFAULT_MAX_PASSAGES is ~80x that.
ARCHIVE_FACTOR = 2
DEFAULT_MAX_PASSAGES = 10_000

_NUM = "一二三四五六七八九十百千零〇两0-9０-９"
ARTICLE_RE = re.compile(rf"^第[{_NUM}]+条(?:[\s　]|$)")
CHAPTER_RE = re.compile(rf"^第[{_NUM}]+[编章节](?:[\s　]|$)")
SECTION_RE = re.compile(r"^(?:[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）)")
SENTENCE_END = "。；！？!?;"
_SENTENCE_RE = re.compile(rf"[^{SENTENCE_END}]*[{SENTENCE_END}」”’）)]*")


@dataclass(frozen=True)
class Segment:
    """One passage of a document: 1-based order, the chapter/section heading above it, its text."""

    seq: int
    heading: str
    text: str


# ---------------------------------------------------------------- reading

MAX_NOTES = 20  # distinct library messages kept per document


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.seen[f"{record.name.split('.')[0]}: {record.getMessage()}"] += 1
        except Exception:  # a message that cannot be formatted is not worth a crash
            self.seen[f"{record.name.split('.')[0]}: {record.msg!r}"] += 1


@contextmanager
def library_messages() -> Iterator[list[str]]:
    """Collect what reader libraries say while one document is read, instead of printing it.

    pypdf, python-docx and friends log warnings ("EOF marker not found") or raise Python warnings
    about a damaged file; with no logging set up they land on stderr, between progress bars. Inside
    this block, records of WARNING and above that reach the root logger and the warnings the current
    filters would show are collected. The yielded list holds them on exit: distinct messages, log
    records first, at most ``MAX_NOTES``, repeats counted.
    """
    handler = _Collect()
    root = logging.getLogger()
    root.addHandler(handler)  # with a handler on the root, logging's last-resort stderr print is not used
    notes: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            yield notes
    finally:
        root.removeHandler(handler)
        for w in caught:
            handler.seen[f"{w.category.__name__}: {w.message}"] += 1
        for message, n in list(handler.seen.items())[:MAX_NOTES]:
            notes.append(" ".join(message.split())[:300] + (f" (×{n})" if n > 1 else ""))
        if len(handler.seen) > MAX_NOTES:
            notes.append(f"… and {len(handler.seen) - MAX_NOTES} other messages")

def _plausible_text(text: str) -> bool:
    """True if ``text`` looks like human-readable text rather than decoded binary junk."""
    if not text:
        return True
    sample = text[:20000]
    bad = sum(1 for ch in sample if (unicodedata.category(ch) in ("Cc", "Co", "Cn", "Cs")
                                    and ch not in "\n\r\t\f") or ch == "\ufffd")
    return bad / len(sample) < 0.01


def decode_bytes(raw: bytes, name: str = "<bytes>") -> str:
    """Decode document bytes: BOMs, UTF-8, UTF-16, GB18030/GBK (also line by line, for files of
    mixed encodings), then charset detection.

    Raises:
        DocumentError: if no decoding gives plausible text (e.g. binary data with a .txt name).
    """
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(enc)
            except UnicodeDecodeError as exc:
                raise DocumentError(f"{name}: starts with a {enc} byte-order mark but is not valid {enc}") from exc
    candidates: list[str] = []
    try:
        candidates.append(raw.decode("utf-8"))
    except UnicodeDecodeError:
        if raw.count(b"\x00") > len(raw) // 8:  # UTF-16 without a BOM has many zero bytes
            for enc in ("utf-16-le", "utf-16-be"):
                try:
                    candidates.append(raw.decode(enc))
                except UnicodeDecodeError:
                    pass
        lines = []
        for line in raw.splitlines(keepends=True):
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(line.decode("gb18030", errors="replace"))
        candidates.append("".join(lines))
        from charset_normalizer import from_bytes

        best = from_bytes(raw[:200_000]).best()
        if best is not None:
            candidates.append(raw.decode(best.encoding, errors="replace"))
    for text in candidates:
        if "\x00" not in text and _plausible_text(text):
            return text
    raise DocumentError(f"{name}: does not look like text in a known encoding (binary data?)")


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def check_archive(path: Path, max_bytes: int) -> None:
    """Refuse a zip-based document (.docx) whose members would inflate past the limits, from the sizes
    in its zip directory, before anything is decompressed or parsed.

    Raises:
        DocumentError: a member over ``max_bytes``, or all members over ``ARCHIVE_FACTOR * max_bytes``.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DocumentError(f"{path}: not a readable .docx file ({type(exc).__name__}: {exc})") from exc
    if not members:
        return
    biggest = max(members, key=lambda m: m.file_size)
    total = sum(m.file_size for m in members)
    if biggest.file_size > max_bytes or total > ARCHIVE_FACTOR * max_bytes:
        raise DocumentError(
            f"{path}: refused before parsing: it inflates to {_mb(total)} ({biggest.filename} alone "
            f"{_mb(biggest.file_size)}; {_mb(path.stat().st_size)} on disk), over the limit of {_mb(max_bytes)} per "
            f"member and {_mb(ARCHIVE_FACTOR * max_bytes)} in all that --max-size-mb sets; split it or raise "
            "--max-size-mb")


def check_text_size(path: Path, n_chars: int, max_bytes: int) -> None:
    """Raise if the text read from a document passes ``max_bytes`` characters (the --max-size-mb limit).

    Raises:
        DocumentError: naming the size and the limit.
    """
    if n_chars > max_bytes:
        raise DocumentError(f"{path}: its text runs past {n_chars:,} characters, over the limit of {max_bytes:,} "
                            "that --max-size-mb sets; split it or raise --max-size-mb")


def _read_docx(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    import zipfile

    from docx import Document

    check_archive(path, max_bytes)
    try:
        doc = Document(str(path))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentError(f"{path}: not a readable .docx file ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # python-docx raises assorted lxml/package errors on corrupt files
        raise DocumentError(f"{path}: corrupt .docx file ({type(exc).__name__}: {exc})") from exc
    parts = [p.text for p in doc.paragraphs]
    for table in doc.tables:
        for row in table.rows:
            parts.append(" ".join(cell.text for cell in row.cells))
    return "\n".join(parts)


def _read_html(path: Path, raw: bytes) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "lxml")
    for tag in soup(["script", "style", "noscript", "head"]):
        tag.decompose()
    return soup.get_text("\n")


def _reflow_pdf_lines(text: str) -> str:
    """PDF extraction breaks lines at the page width: join a line to the next unless it ends a
    sentence or the next starts an article, chapter or section."""
    out: list[str] = []
    for line in (ln.strip() for ln in text.splitlines()):
        if not line:
            continue
        starts_unit = bool(ARTICLE_RE.match(line) or CHAPTER_RE.match(line) or SECTION_RE.match(line))
        if out and not starts_unit and out[-1][-1] not in SENTENCE_END + "：:" and len(out[-1]) > 15:
            out[-1] += line
        else:
            out.append(line)
    return "\n".join(out)


def _read_pdf(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(f"{path}: the PDF is password-protected; decrypt it first")
        pages, n_chars = [], 0
        for page in reader.pages:  # compressed text streams can inflate: stop once past the limit
            pages.append(page.extract_text() or "")
            n_chars += len(pages[-1])
            check_text_size(path, n_chars, max_bytes)
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(f"{path}: corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # pypdf raises many internal errors on damaged files
        raise DocumentError(f"{path}: corrupt or unreadable PDF ({type(exc).__name__}: {exc})") from exc
    text = "\n".join(pages)
    if not text.strip():
        raise DocumentError(f"{path}: the PDF has no extractable text (scanned images need OCR first)")
    return _reflow_pdf_lines(text)


def _strip_markdown(text: str) -> str:
    lines = []
    for line in text.splitlines():
        line = re.sub(r"^\s{0,3}(?:#{1,6}\s*|>\s*|[-*+]\s+|\d+\.\s+)", "", line)
        line = re.sub(r"(\*\*|__|`)", "", line)
        lines.append(line)
    return "\n".join(lines)


def read_document(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """Plain text of a document file.

    ``max_bytes`` limits the file on disk, each member of a .docx archive once inflated (and all of
    them together to ``ARCHIVE_FACTOR`` times it), and the characters of text read.

    Raises:
        DocumentError: missing, empty, too large (on disk or once inflated), unsupported, corrupt or
            undecodable file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"{path}: unsupported file type {suffix or '(none)'}; "
                            f"expected one of {', '.join(SUPPORTED_SUFFIXES)}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read ({exc.strerror})") from exc
    if size == 0:
        raise DocumentError(f"{path}: empty file")
    if size > max_bytes:
        raise DocumentError(f"{path}: file too large ({_mb(size)} > limit {_mb(max_bytes)}); split it or raise "
                            "--max-size-mb")
    if suffix == ".docx":
        text = _read_docx(path, max_bytes)
    elif suffix == ".pdf":
        text = _read_pdf(path, max_bytes)
    else:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DocumentError(f"{path}: cannot read ({exc.strerror})") from exc
        if suffix in (".html", ".htm"):
            text = _read_html(path, raw)
        else:
            text = decode_bytes(raw, str(path))
            text = _strip_markdown(text) if suffix in (".md", ".markdown") else text
    check_text_size(path, len(text), max_bytes)
    return text


# ---------------------------------------------------------------- segmentation

def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, each keeping its end mark (。；！？) and closing quotes."""
    return [s for s in _SENTENCE_RE.findall(text) if s]


def chunk_paragraph(paragraph: str, max_chars: int = MAX_CHUNK) -> list[str]:
    """Cut a paragraph at sentence ends into chunks of at most ``max_chars`` characters.

    A single sentence longer than ``max_chars`` is cut at commas, and failing that, hard.
    """
    if len(paragraph) <= max_chars:
        return [paragraph]
    pieces: list[str] = []
    for sentence in split_sentences(paragraph):
        if len(sentence) <= max_chars:
            pieces.append(sentence)
            continue
        for clause in re.findall(r"[^，,]*[，,]?", sentence):
            while len(clause) > max_chars:
                pieces.append(clause[:max_chars])
                clause = clause[max_chars:]
            if clause:
                pieces.append(clause)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(piece) > max_chars:
            chunks.append(current)
            current = ""
        current += piece
    if current:
        chunks.append(current)
    return chunks


def _clean_lines(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u3000", " ").replace("\xa0", " ")
    return [ln.strip() for ln in text.split("\n") if ln.strip()]


def _is_heading(line: str) -> bool:
    return (len(line) <= 40 and not any(ch in line for ch in "。；！？")
            and (SECTION_RE.match(line) is not None or CHAPTER_RE.match(line) is not None))


def segment_text(text: str, max_chars: int = MAX_CHUNK, max_passages: int | None = None) -> list[Segment]:
    """Cut document text into passages (articles for regulations, paragraph chunks otherwise).

    With ``max_passages`` cutting stops once there are more than that many (the caller refuses the text).
    """
    lines = _clean_lines(text)
    n_articles = sum(1 for ln in lines if ARTICLE_RE.match(ln))
    out: list[Segment] = []
    heading = ""
    if n_articles >= 2:
        article: list[str] = []
        article_heading = ""

        def flush() -> None:
            if article:
                out.append(Segment(len(out) + 1, article_heading, "\n".join(article)))

        for line in lines:
            if max_passages is not None and len(out) > max_passages:
                return out
            if ARTICLE_RE.match(line):
                flush()
                article = [line]
                article_heading = heading
            elif CHAPTER_RE.match(line) and len(line) <= 40:
                flush()
                article = []
                heading = line
            elif article:
                article.append(line)
        flush()
        return out
    for line in lines:
        if max_passages is not None and len(out) > max_passages:
            return out
        if _is_heading(line):
            heading = line
            continue
        if len(line) < 2:
            continue
        for chunk in chunk_paragraph(line, max_chars):
            out.append(Segment(len(out) + 1, heading, chunk))
    return out


def segment_document(path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES,
                     max_passages: int = DEFAULT_MAX_PASSAGES) -> list[Segment]:
    """Read and segment one document file (at most ``max_passages`` passages, see :func:`read_document`
    for ``max_bytes``).

    Raises:
        DocumentError: if it cannot be read, yields no passages, or yields more than ``max_passages``.
    """
    segments = segment_text(read_document(path, max_bytes=max_bytes), max_passages=max_passages)
    if not segments:
        raise DocumentError(f"{path}: no text passages found")
    if len(segments) > max_passages:
        raise DocumentError(f"{path}: more than {max_passages:,} passages, the limit per document "
                            "(--max-passages); split it or raise --max-passages")
    return segments


def find_documents(folder: str | Path) -> list[Path]:
    """Supported document files under ``folder`` (recursive), sorted, hidden files skipped."""
    folder = Path(folder)
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
