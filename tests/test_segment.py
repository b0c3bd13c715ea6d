"""Segmentation per format and encoding; every sample document is made here (no corpus text)."""

from pathlib import Path

import pytest

from policyclf.errors import DocumentError
from policyclf.segment import chunk_paragraph, decode_bytes, read_document, segment_document, segment_text

REGULATION = """某市促进协同创新条例

第一章 总则
第一条 为了促进高校与企业协同创新，制定本条例。
第二条 本条例适用于本市行政区域内的协同创新活动。
第二章 支持措施
第三条 市人民政府设立协同创新专项资金。
专项资金用于支持联合实验室建设。
第四条 本条例自二〇三〇年一月一日起施行。
"""

REPORT = "一、过去一年的工作\n" + "我们推进科技创新，新建联合实验室十家。" * 3 + "\n二、今年的任务\n支持人才引进。\n"


def test_regulation_articles_keep_paragraphs_and_headings():
    segs = segment_text(REGULATION)
    assert [s.text.split()[0] for s in segs] == ["第一条", "第二条", "第三条", "第四条"]
    assert segs[2].text == "第三条 市人民政府设立协同创新专项资金。\n专项资金用于支持联合实验室建设。"
    assert segs[2].heading == "第二章 支持措施" and segs[0].heading == "第一章 总则"
    assert [s.seq for s in segs] == [1, 2, 3, 4]


def test_report_paragraphs_and_headings():
    segs = segment_text(REPORT)
    assert len(segs) == 2
    assert segs[0].heading == "一、过去一年的工作" and segs[1].heading == "二、今年的任务"


def test_long_paragraph_cut_at_sentence_ends():
    sentence = "推动高校科技成果在本地转化，支持企业与高校共建研发机构。"  # 29 characters
    para = sentence * 25
    chunks = chunk_paragraph(para, 300)
    assert all(len(c) <= 300 for c in chunks)
    assert "".join(chunks) == para
    assert all(c.endswith("。") for c in chunks)


def test_overlong_sentence_is_still_cut():
    chunks = chunk_paragraph("创新" * 400, 300)
    assert all(len(c) <= 300 for c in chunks) and "".join(chunks) == "创新" * 400


def test_traditional_characters_pass_through():
    text = "第一條 為了促進科學技術進步，制定本條例。"
    assert segment_text(text)[0].text == text


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16"])
def test_txt_encodings(tmp_path, encoding):
    path = tmp_path / f"doc-{encoding}.txt"
    path.write_bytes(REGULATION.encode(encoding))
    segs = segment_document(path)
    assert len(segs) == 4 and segs[0].text.startswith("第一条 为了促进高校")


def test_utf16_without_bom_and_mixed_line_encodings():
    raw = REGULATION.encode("utf-16-le")
    assert decode_bytes(raw).startswith("某市促进")
    mixed = "第一条 高校科技成果转化。\n".encode() + "第二条 设立专项资金。\n".encode("gbk")
    assert decode_bytes(mixed) == "第一条 高校科技成果转化。\n第二条 设立专项资金。\n"


def test_binary_junk_with_txt_name_is_refused(tmp_path):
    import random

    rng = random.Random(0)
    path = tmp_path / "junk.txt"
    path.write_bytes(bytes(rng.randrange(256) for _ in range(5000)))
    with pytest.raises(DocumentError, match="junk.txt: does not look like text"):
        read_document(path)


def test_markdown(tmp_path):
    path = tmp_path / "law.md"
    path.write_text("# 某市条例\n\n## 第一章 总则\n\n**第一条** 为了促进创新，制定本条例。\n\n第二条 适用范围。\n", encoding="utf-8")
    segs = segment_document(path)
    assert [s.text for s in segs] == ["第一条 为了促进创新，制定本条例。", "第二条 适用范围。"]


def make_docx(path: Path, text: str) -> Path:
    from docx import Document

    doc = Document()
    for line in text.splitlines():
        doc.add_paragraph(line)
    doc.save(str(path))
    return path


def make_inflating_docx(path: Path, paragraphs: int, text: str = "设立科技专项资金支持企业研发。") -> Path:
    """A .docx, small on disk, whose word/document.xml inflates to ``paragraphs`` repeated paragraphs
    (~80 bytes each: 1.5 million make the ~120 MB of issue 23's file from 0.4 MB)."""
    import zipfile

    base = make_docx(path.with_name(path.name + ".base.docx"), "第一条 为了促进科技创新，制定本条例。")
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "word/document.xml":
                head, rest = data.decode("utf-8").split("<w:body>", 1)
                para = f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"
                data = (head + "<w:body>" + para * paragraphs + rest).encode("utf-8")
            out.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    base.unlink()
    return path


def make_pdf(path: Path, text: str, password: str | None = None) -> Path:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    c = canvas.Canvas(str(path), encrypt=password)
    c.setFont("STSong-Light", 11)
    y = 800
    for line in text.splitlines():
        c.drawString(40, y, line)
        y -= 16
    c.save()
    return path


def make_html(path: Path, text: str) -> Path:
    body = "".join(f"<p>{line}</p>" for line in text.splitlines())
    path.write_text(f"<html><head><title>t</title><script>var x='第九条 不是正文';</script></head>"
                    f"<body>{body}</body></html>", encoding="utf-8")
    return path


def test_docx(tmp_path):
    segs = segment_document(make_docx(tmp_path / "law.docx", REGULATION))
    assert len(segs) == 4 and segs[2].text.endswith("联合实验室建设。")


def test_html_drops_scripts(tmp_path):
    segs = segment_document(make_html(tmp_path / "law.html", REGULATION))
    assert len(segs) == 4 and all("不是正文" not in s.text for s in segs)


def test_pdf(tmp_path):
    segs = segment_document(make_pdf(tmp_path / "law.pdf", REGULATION))
    assert [s.text.split()[0] for s in segs] == ["第一条", "第二条", "第三条", "第四条"]


def test_password_protected_pdf(tmp_path):
    path = make_pdf(tmp_path / "locked.pdf", REGULATION, password="secret")
    with pytest.raises(DocumentError, match="password-protected"):
        read_document(path)


@pytest.mark.parametrize("name, content, message", [
    ("empty.txt", b"", "empty file"),
    ("broken.docx", b"PK\x03\x04 not really a zip", "docx"),
    ("broken.pdf", b"%PDF-1.4\n garbage", "PDF"),
    ("notes.xyz", b"abc", "unsupported file type"),
])
def test_bad_files_raise_document_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DocumentError, match=message):
        read_document(path)


def test_size_limit(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes("创新。".encode() * 1000)
    with pytest.raises(DocumentError, match="file too large"):
        read_document(path, max_bytes=1000)


def test_an_inflating_docx_is_refused_from_its_zip_directory_before_parsing(tmp_path, monkeypatch):
    """Issue 23: a docx small on disk whose word/document.xml inflates past the limit is never parsed."""
    import docx

    path = make_inflating_docx(tmp_path / "bomb.docx", 40_000)  # ~3.1 MB of XML
    assert path.stat().st_size < 60_000
    assert len(segment_document(path, max_bytes=4 * 2**20, max_passages=50_000)) == 40_001  # under the limits: read

    def no_parsing(*args, **kwargs):
        raise AssertionError("the document was parsed")

    monkeypatch.setattr(docx, "Document", no_parsing)
    with pytest.raises(DocumentError, match=r"refused before parsing: it inflates to 3\.\d MB \(word/document.xml alone "
                                            r"3\.\d MB; 0\.0 MB on disk\), over the limit of 1\.0 MB per member"):
        read_document(path, max_bytes=2**20)


def test_all_members_together_have_a_limit_too(tmp_path):
    import zipfile

    path = make_docx(tmp_path / "many.docx", REGULATION)
    with zipfile.ZipFile(path, "a") as z:
        for i in range(3):
            z.writestr(f"word/media/pad{i}.bin", b"\0" * 400_000, compress_type=zipfile.ZIP_DEFLATED)  # each under the limit, together over twice it
    with pytest.raises(DocumentError, match="over the limit of 0.5 MB per member and 1.0 MB in all"):
        read_document(path, max_bytes=2**19)
    assert len(segment_document(path, max_bytes=2**20)) == 4


def test_text_that_inflates_from_a_small_pdf_is_refused(tmp_path):
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    path = tmp_path / "long.pdf"
    c = canvas.Canvas(str(path), pageCompression=1)
    for _ in range(30):
        c.setFont("STSong-Light", 8)
        for i in range(90):
            c.drawString(20, 820 - 9 * i, "设立科技专项资金支持企业研发。" * 4)
        c.showPage()
    c.save()
    assert path.stat().st_size < 100_000
    with pytest.raises(DocumentError, match=r"its text runs past [\d,]+ characters, over the limit of 100,000"):
        read_document(path, max_bytes=100_000)


def test_passages_per_document_are_capped(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("设立科技专项资金支持企业研发。\n" * 30, encoding="utf-8")
    assert len(segment_document(path, max_passages=30)) == 30
    with pytest.raises(DocumentError, match="more than 29 passages, the limit per document"):
        segment_document(path, max_passages=29)
    assert len(segment_text("设立科技专项资金。\n" * 1000, max_passages=10)) == 11  # cutting stops early
