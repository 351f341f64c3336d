"""PDF files joined into one, written as it goes.

`PdfJoin` copies each part's pages (and what they draw with: fonts, images, link
annotations) into the output file and forgets them before it reads the next part, so
memory holds one part at a time, plus a few numbers per object written, whatever the
number of parts. The joined file keeps what WeasyPrint would have written for the
parts laid out as one document: an outline (bookmarks) nested by level across the
parts, the named destinations (an anchor's first occurrence wins) that internal links
go to, and the first part's document information and language.

The parts are read with pypdf; the output is written by hand (objects, then one
cross-reference table), since pypdf's writer keeps every object until it writes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

from pypdf import PdfReader
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NumberObject,
    PdfObject,
    StreamObject,
    TextStringObject,
)

#: PDF points per CSS pixel: WeasyPrint's scale at zoom 1.
POINTS_PER_PX = 0.75


@dataclass(frozen=True)
class Bookmark:
    """One outline entry of a part: its heading level (1 for <h1>), its label, and
    where it points (the part's page, 0-based, and PDF coordinates on it)."""

    level: int
    label: str
    page: int
    x: float
    y: float
    open: bool = True


@dataclass(frozen=True)
class Part:
    """A PDF file to join, with its number of pages and its outline entries."""

    path: Path
    pages: int
    bookmarks: tuple[Bookmark, ...] = ()


def weasyprint_bookmarks(document: Any) -> tuple[Bookmark, ...]:
    """The outline entries of a rendered WeasyPrint document, page by page, as its
    `write_pdf` would place them (bottom-left origin, in points)."""
    found = []
    for number, page in enumerate(document.pages):
        for level, label, (x, y), state in page.bookmarks:
            found.append(
                Bookmark(level, label, number, x * POINTS_PER_PX, (page.height - y) * POINTS_PER_PX, state != "closed")
            )
    return tuple(found)


@dataclass
class _Entry:
    mark: Bookmark
    page: int  # in the joined file
    children: list[_Entry] = field(default_factory=list)
    number: int = 0  # its object


def _nest(entries: list[tuple[Bookmark, int]]) -> list[_Entry]:
    """Entries nested by level, as WeasyPrint nests headings: an entry goes under the
    nearest entry before it of a lower level."""
    root: list[_Entry] = []
    stack: list[tuple[int, list[_Entry]]] = [(0, root)]
    for mark, page in entries:
        while stack[-1][0] >= mark.level:
            stack.pop()
        entry = _Entry(mark, page)
        stack[-1][1].append(entry)
        stack.append((mark.level, entry.children))
    return root


class PdfJoin:
    """Write `path` from parts added in order; `close()` finishes the file (written
    beside it and renamed into place, so a reader never sees half a file)."""

    HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"

    def __init__(self, path: Path):
        self.path = path
        self._partial = path.with_name(path.name + ".partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out: BinaryIO = open(self._partial, "wb")  # noqa: SIM115 - closed by close()/abort()
        self._out.write(self.HEADER)
        self._offsets: list[int] = [0, 0, 0]  # by object number; 1: the catalog, 2: the page tree
        self._pages: list[int] = []
        self._bookmarks: list[tuple[Bookmark, int]] = []
        self._dests: dict[str, ArrayObject] = {}
        self._info: int | None = None
        self._lang: PdfObject | None = None

    @property
    def pages(self) -> int:
        return len(self._pages)

    def _reserve(self) -> int:
        self._offsets.append(0)
        return len(self._offsets) - 1

    def _emit(self, number: int, obj: PdfObject) -> None:
        self._offsets[number] = self._out.tell()
        self._out.write(b"%d 0 obj\n" % number)
        obj.write_to_stream(self._out)
        self._out.write(b"\nendobj\n")

    def add(self, part: Part, *, skip_anchors: frozenset[str] = frozenset()) -> None:
        """Append the part's pages (`skip_anchors`: named destinations of the part not
        to keep, e.g. stand-ins for anchors that a later part holds)."""
        reader = PdfReader(part.path)
        numbers: dict[int, int] = {}
        todo: list[IndirectObject] = []

        def ref(old: IndirectObject) -> IndirectObject:
            number = numbers.get(old.idnum)
            if number is None:
                number = numbers[old.idnum] = self._reserve()
                todo.append(old)
            return IndirectObject(number, 0, None)

        def copy(obj: Any) -> Any:
            if isinstance(obj, IndirectObject):
                return ref(obj)
            if isinstance(obj, StreamObject):
                stream = DecodedStreamObject()
                stream.update({key: copy(value) for key, value in dict.items(obj)})
                stream.set_data(obj._data)  # the bytes as stored, still encoded
                return stream
            if isinstance(obj, DictionaryObject):
                return DictionaryObject({key: copy(value) for key, value in dict.items(obj)})
            if isinstance(obj, ArrayObject):
                return ArrayObject(copy(value) for value in list.__iter__(obj))
            return obj

        pages = {}
        first = len(self._pages)
        for page in reader.pages:  # pypdf puts inherited attributes (resources, media box) on each page
            if page.indirect_reference is None:
                raise ValueError(f"{part.path}: a page that is not an indirect object")
            pages[page.indirect_reference.idnum] = page
            self._pages.append(ref(page.indirect_reference).idnum)
        if len(pages) != part.pages:
            raise ValueError(f"{part.path} has {len(pages)} pages, not the {part.pages} expected")
        catalog = cast(DictionaryObject, reader.trailer["/Root"].get_object())
        names = cast(DictionaryObject | None, catalog.get("/Names"))
        if names is not None and "/Dests" in names:
            for name, dest in _name_tree(cast(DictionaryObject, names["/Dests"])):
                if name not in skip_anchors and name not in self._dests:
                    dest = dest.get_object()
                    if isinstance(dest, DictionaryObject):
                        dest = dest["/D"]
                    self._dests[name] = copy(dest)
        if first == 0:
            self._lang = catalog.get("/Lang")
            info = cast(DictionaryObject | None, reader.trailer.get("/Info"))
            if info is not None:
                self._info = self._reserve()
                self._emit(self._info, copy(info.get_object()))
        while todo:
            old = todo.pop()
            original = pages.get(old.idnum)
            if original is not None:
                page_copy = DictionaryObject(
                    {key: copy(value) for key, value in dict.items(original) if key not in ("/Parent", "/StructParents")}
                )
                page_copy[NameObject("/Parent")] = IndirectObject(2, 0, None)
                self._emit(numbers[old.idnum], page_copy)
            else:
                self._emit(numbers[old.idnum], copy(reader.get_object(old)))
        self._bookmarks.extend((mark, first + mark.page) for mark in part.bookmarks)

    def close(self) -> None:
        """Write the page tree, the outline, the catalog and the cross-reference table."""
        kids = ArrayObject(IndirectObject(n, 0, None) for n in self._pages)
        self._emit(
            2,
            DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/Pages"),
                    NameObject("/Kids"): kids,
                    NameObject("/Count"): NumberObject(len(self._pages)),
                }
            ),
        )
        catalog = DictionaryObject(
            {NameObject("/Type"): NameObject("/Catalog"), NameObject("/Pages"): IndirectObject(2, 0, None)}
        )
        outline = self._write_outline()
        if outline is not None:
            catalog[NameObject("/Outlines")] = IndirectObject(outline, 0, None)
        if self._lang is not None:
            catalog[NameObject("/Lang")] = self._lang
        if self._dests:
            flat = ArrayObject()
            for name in sorted(self._dests):
                flat += [TextStringObject(name), self._dests[name]]
            catalog[NameObject("/Names")] = DictionaryObject(
                {NameObject("/Dests"): DictionaryObject({NameObject("/Names"): flat})}
            )
        self._emit(1, catalog)
        start = self._out.tell()
        self._out.write(b"xref\n0 %d\n0000000000 65535 f \n" % len(self._offsets))
        for offset in self._offsets[1:]:
            self._out.write(b"%010d 00000 n \n" % offset)
        info = b"" if self._info is None else b" /Info %d 0 R" % self._info
        self._out.write(
            b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(self._offsets), info, start)
        )
        self._out.close()
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        """Stop without a file (the partial one removed)."""
        self._out.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> PdfJoin:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def _write_outline(self) -> int | None:
        """The outline as WeasyPrint writes it: each entry's /Count is its open
        descendants (negative when it is closed)."""
        entries = _nest(self._bookmarks)
        if not entries:
            return None
        root = self._reserve()

        def number(items: list[_Entry]) -> None:
            for item in items:
                item.number = self._reserve()
                number(item.children)

        def write(items: list[_Entry], parent: int) -> int:
            count = len(items)
            for i, item in enumerate(items):
                below = write(item.children, item.number)
                entry = DictionaryObject(
                    {
                        NameObject("/Title"): TextStringObject(item.mark.label),
                        NameObject("/Dest"): ArrayObject(
                            [
                                IndirectObject(self._pages[item.page], 0, None),
                                NameObject("/XYZ"),
                                FloatObject(item.mark.x),
                                FloatObject(item.mark.y),
                                NumberObject(0),
                            ]
                        ),
                        NameObject("/Parent"): IndirectObject(parent, 0, None),
                        NameObject("/Count"): NumberObject(below if item.mark.open else -below),
                    }
                )
                if item.mark.open:
                    count += below
                if i > 0:
                    entry[NameObject("/Prev")] = IndirectObject(items[i - 1].number, 0, None)
                if i + 1 < len(items):
                    entry[NameObject("/Next")] = IndirectObject(items[i + 1].number, 0, None)
                if item.children:
                    entry[NameObject("/First")] = IndirectObject(item.children[0].number, 0, None)
                    entry[NameObject("/Last")] = IndirectObject(item.children[-1].number, 0, None)
                self._emit(item.number, entry)
            return count

        number(entries)
        count = write(entries, root)
        self._emit(
            root,
            DictionaryObject(
                {
                    NameObject("/Count"): NumberObject(count),
                    NameObject("/First"): IndirectObject(entries[0].number, 0, None),
                    NameObject("/Last"): IndirectObject(entries[-1].number, 0, None),
                }
            ),
        )
        return root


def _name_tree(node: DictionaryObject) -> list[tuple[str, Any]]:
    """The (name, value) pairs of a PDF name tree."""
    found = []
    names = node.get("/Names")
    if names is not None:
        flat = list(names.get_object())
        found += [(str(flat[i]), flat[i + 1]) for i in range(0, len(flat) - 1, 2)]
    for kid in node.get("/Kids", ArrayObject()).get_object():
        found += _name_tree(kid.get_object())
    return found
