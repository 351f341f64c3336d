"""Joining PDF files on disk (engine.pdfjoin): the pages of each part in order, only the
pages chosen (a page left out is never written), the outline nested across parts, and
the named destinations of the pages kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.services.committee.bundles import pdf_renderer

if pdf_renderer() is None:  # WeasyPrint and pypdf come with the `pdf` extra
    pytest.skip("WeasyPrint or pypdf is not installed", allow_module_level=True)

from pypdf import PdfReader  # noqa: E402
from pypdf.generic import DictionaryObject  # noqa: E402

from engine.pdfjoin import Part, PdfJoin, weasyprint_bookmarks  # noqa: E402

FRONT = '<h1>Front</h1><p id="shared">front page</p>'
SECTIONS = "".join(
    f'<section style="break-before: page" id="b-{i}"><h2>B{i}</h2><p>secret {i}</p></section>' for i in range(3)
)


def part(tmp_path: Path, name: str, body: str) -> Part:
    document = pdf_renderer()(string=f"<html><body>{body}</body></html>").render()  # type: ignore[misc]
    path = tmp_path / f"{name}.pdf"
    document.write_pdf(path)
    return Part(path, len(document.pages), weasyprint_bookmarks(document))


def texts(path: Path) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in PdfReader(path).pages]


def page_objects(path: Path) -> int:
    """Every object of the file that is a page, in the page tree or not."""
    reader = PdfReader(path)
    count = 0
    for number in range(1, int(reader.trailer["/Size"])):
        obj = reader.get_object(number)
        count += isinstance(obj, DictionaryObject) and obj.get("/Type") == "/Page"
    return count


def test_parts_are_joined_in_order_with_their_outline_nested_and_their_destinations(tmp_path: Path) -> None:
    front, sections = part(tmp_path, "front", FRONT), part(tmp_path, "sections", SECTIONS)
    with PdfJoin(tmp_path / "out.pdf") as pdf:
        pdf.add(front)
        pdf.add(sections)
    assert pdf.pages == front.pages + sections.pages == 4
    assert texts(tmp_path / "out.pdf") == ["Front front page", "B0 secret 0", "B1 secret 1", "B2 secret 2"]
    reader = PdfReader(tmp_path / "out.pdf")
    outline = reader.outline
    assert [item.title for item in outline if not isinstance(item, list)] == ["Front"]
    assert [(item.title, reader.get_destination_page_number(item)) for item in outline[1]] == [
        ("B0", 1),
        ("B1", 2),
        ("B2", 3),
    ]
    dests = {name: reader.get_destination_page_number(d) for name, d in reader.named_destinations.items()}
    assert dests == {"shared": 0, "b-0": 1, "b-1": 2, "b-2": 3}
    assert not list(tmp_path.glob("*.partial"))


def test_a_page_left_out_is_never_written_nor_its_destination_or_bookmark(tmp_path: Path) -> None:
    sections = part(tmp_path, "sections", SECTIONS)
    note = part(tmp_path, "note", "<h2>B1</h2><p>left out: a note in its place</p>")
    with PdfJoin(tmp_path / "out.pdf") as pdf:
        pdf.add(sections, [0], keep=True)
        pdf.add(note)
        pdf.add(sections, [2])
    assert texts(tmp_path / "out.pdf") == ["B0 secret 0", "B1 left out: a note in its place", "B2 secret 2"]
    assert page_objects(tmp_path / "out.pdf") == 3
    reader = PdfReader(tmp_path / "out.pdf")
    assert sorted(reader.named_destinations) == ["b-0", "b-2"]
    assert [(item.title, reader.get_destination_page_number(item)) for item in reader.outline] == [
        ("B0", 0),
        ("B1", 1),
        ("B2", 2),
    ]


def test_the_first_destination_of_a_name_wins_unless_it_is_a_stand_in(tmp_path: Path) -> None:
    front = part(tmp_path, "front", FRONT)
    other = part(tmp_path, "other", '<p id="shared">the other one</p>')
    for skip, page in ((frozenset(), 0), (frozenset({"shared"}), 1)):
        with PdfJoin(tmp_path / "out.pdf") as pdf:
            pdf.add(front, skip_anchors=skip)
            pdf.add(other)
        reader = PdfReader(tmp_path / "out.pdf")
        assert reader.get_destination_page_number(reader.named_destinations["shared"]) == page


def test_a_failed_join_leaves_no_file(tmp_path: Path) -> None:
    front = part(tmp_path, "front", FRONT)
    with pytest.raises(ValueError, match="has 1 pages, not the 2 expected"), PdfJoin(tmp_path / "out.pdf") as pdf:
        pdf.add(Part(front.path, 2))
    assert not (tmp_path / "out.pdf").exists() and not list(tmp_path.glob("*.partial"))


def test_two_writers_of_the_same_file_at_once_each_finish_and_leave_a_whole_file(tmp_path: Path) -> None:
    """Two runs of the bundles' flow may lay out the same member's PDF at once (the
    second sees the bundle unchanged and its PDF not yet there): neither fails."""
    front, sections = part(tmp_path, "front", FRONT), part(tmp_path, "sections", SECTIONS)
    with PdfJoin(tmp_path / "out.pdf") as first, PdfJoin(tmp_path / "out.pdf") as second:
        for pdf in (first, second):
            pdf.add(front, keep=True)
        for pdf in (second, first):
            pdf.add(sections, keep=True)
    assert texts(tmp_path / "out.pdf") == ["Front front page", "B0 secret 0", "B1 secret 1", "B2 secret 2"]
    assert not list(tmp_path.glob("*.partial"))


def test_a_stamp_numbers_every_page_of_the_joined_file(tmp_path: Path) -> None:
    front, sections = part(tmp_path, "front", FRONT), part(tmp_path, "sections", SECTIONS)
    total = front.pages + 2
    with PdfJoin(tmp_path / "out.pdf", stamp=lambda n: f"Cycle (2018) – version 2 – page {n} sur {total}") as pdf:
        pdf.add(front)
        pdf.add(sections, [2, 0])
    pages = texts(tmp_path / "out.pdf")
    assert pages == [
        "Front front page Cycle (2018) – version 2 – page 1 sur 3",
        "B2 secret 2 Cycle (2018) – version 2 – page 2 sur 3",
        "B0 secret 0 Cycle (2018) – version 2 – page 3 sur 3",
    ]
