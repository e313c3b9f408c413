from pathlib import Path

import pytest

from conftest import DOCUMENTS
from qa.ingest import IngestError, load_folder


def test_seed_documents_title_and_date():
    docs = {d.id: d for d in load_folder(DOCUMENTS).documents}
    a = docs["000_d638d58df6cf935f.txt"]
    assert a.title.startswith("New book reveals secret calls")
    assert a.date == "2021-09-15"
    b = docs["002_4345dc4e47c11390.txt"]
    assert b.date == "2021-09-17"
    assert b.title.startswith("China avoids the Mark Milley controversy")
    assert b.text == (DOCUMENTS / b.id).read_text(encoding="utf-8")


def test_recursive_hidden_binary_undecodable_empty(corpus: Path):
    (corpus / ".hidden.txt").write_text("secret", encoding="utf-8")
    (corpus / ".git").mkdir()
    (corpus / ".git" / "x.md").write_text("nope", encoding="utf-8")
    (corpus / "blob.txt").write_bytes(b"\x89PNG\x00\x01")
    (corpus / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (corpus / "empty.md").write_text("", encoding="utf-8")
    (corpus / "image.png").write_bytes(b"\x89PNG")
    result = load_folder(corpus)
    ids = {d.id for d in result.documents}
    assert {"lighthouse.md", "volcano.txt", "notes/bees.txt", "empty.md"} <= ids
    assert not any(i.startswith(".") or "/." in i for i in ids)
    assert "image.png" not in ids
    assert set(result.errors) == {"blob.txt", "latin1.txt"}
    assert "binary" in result.errors["blob.txt"] and "blob.txt" in result.errors["blob.txt"]
    assert "UTF-8" in result.errors["latin1.txt"]
    assert "empty.md" in result.warnings


def test_markdown_title_and_published_date(corpus: Path):
    docs = {d.id: d for d in load_folder(corpus).documents}
    assert docs["lighthouse.md"].title == "The Harbour Lighthouse"
    assert docs["lighthouse.md"].date == "2019-03-03"
    assert docs["volcano.txt"].date == "2020-11-05"
    assert docs["notes/bees.txt"].date is None


def test_missing_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(IngestError, match="does not exist"):
        load_folder(tmp_path / "nope")
