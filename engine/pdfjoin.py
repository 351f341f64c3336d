"""PDF files joined into one, written as it goes.

`PdfJoin` copies each part's pages (and what they draw with: fonts, images, link
annotations) into the output file and forgets them before it reads the next part, so
memory holds one part at a time, plus a few numbers per object written, whatever the
number of parts. The joined file keeps what WeasyPrint would have written for the
parts laid out as one document: an outline (bookmarks) nested by level across the
parts, the named destinations (an anchor's first occurrence wins) that internal links
go to, and the first part's document information and language.

The parts are read with pypdf; the output is written by hand (objects, then one
cross-reference table), since pypdf's writer keeps every object until it writes.

A `stamp` writes a line of text at the foot of every page of the joined file (a page's
number among all of them, which no part knows when it is laid out): in Helvetica, one
of the fonts every PDF reader has, so nothing is embedded; its text is what Windows-1252
can write (the engine's three languages)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
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
    NullObject,
    NumberObject,
    PdfObject,
    StreamObject,
    TextStringObject,
)

#: PDF points per CSS pixel: WeasyPrint's scale at zoom 1.
POINTS_PER_PX = 0.75
#: Where a stamp's line starts, from the page's bottom-left corner (points), and its size.
STAMP_AT, STAMP_SIZE = (42.0, 22.0), 7.5


def _pdf_text(text: str) -> bytes:
    """A PDF literal string of `text` in Windows-1252 (WinAnsiEncoding)."""
    raw = text.encode("cp1252", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


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


@dataclass
class _Source:
    """A part being copied: its reader, and which of its objects were copied as which."""

    reader: PdfReader
    page_objects: dict[int, Any]  # object number in the part -> its page
    dests: list[tuple[str, Any]]
    pages: list[Any] = field(default_factory=list)
    allowed: set[int] = field(default_factory=set)  # the pages chosen so far
    skip_anchors: frozenset[str] = frozenset()
    numbers: dict[int, int] = field(default_factory=dict)  # object number in the part -> in the output
    todo: list[IndirectObject] = field(default_factory=list)


class PdfJoin:
    """Write `path` from parts added in order; `close()` finishes the file (written
    beside it under a name of its own and renamed into place, so a reader never sees
    half a file, and two processes writing the same bundle at once each write a whole
    one: the last renamed stays)."""

    HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"

    def __init__(self, path: Path, stamp: Callable[[int], str] | None = None):
        """`stamp`: the line to write at the foot of the page of this number (from 1), if any."""
        self.path = path
        self._stamp = stamp
        self._stamp_objects: tuple[int, int] | None = None  # the font, and the content that saves the state
        self._position: dict[int, int] = {}  # a page's object in the output -> its number (from 1)
        self._partial = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._out: BinaryIO = open(self._partial, "wb")  # noqa: SIM115 - closed by close()/abort()
        self._out.write(self.HEADER)
        self._offsets: list[int] = [0, 0, 0]  # by object number; 1: the catalog, 2: the page tree
        self._pages: list[int] = []
        self._bookmarks: list[tuple[Bookmark, int]] = []
        self._dests: dict[str, ArrayObject] = {}
        self._info: int | None = None
        self._lang: PdfObject | None = None
        self._sources: dict[Path, _Source] = {}

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

    def add(
        self,
        part: Part,
        pages: Sequence[int] | None = None,
        *,
        skip_anchors: frozenset[str] = frozenset(),
        keep: bool = False,
    ) -> None:
        """Append the part's pages (`pages`: only these, by index, in this order). Only
        what those pages use is copied: a page left out is never written, and a
        reference to it from a copied object is dropped. Named destinations on pages
        left out are dropped too, and so are `skip_anchors` (e.g. stand-ins for anchors
        that another part holds), in this and every later `add` of the part. `keep`: the
        part stays open for a later `add` of more of its pages, which then share what was
        copied (fonts); else it is closed."""
        source = self._sources.get(part.path) or self._open(part)
        source.skip_anchors |= skip_anchors
        chosen = list(range(part.pages)) if pages is None else list(pages)
        first = len(self._pages)
        for index in chosen:
            page = source.pages[index]
            if page.indirect_reference is None:
                raise ValueError(f"{part.path}: page {index} is not an indirect object")
            source.allowed.add(page.indirect_reference.idnum)
            number = cast(IndirectObject, self._ref(source, page.indirect_reference)).idnum
            self._pages.append(number)
            self._position[number] = len(self._pages)
        for name, dest in source.dests:
            if name in source.skip_anchors or name in self._dests:
                continue
            target = list.__getitem__(dest, 0) if isinstance(dest, ArrayObject) and dest else None
            if isinstance(target, IndirectObject) and target.idnum in source.numbers:
                self._dests[name] = self._copy(source, dest)
        self._drain(source)
        position = {index: first + n for n, index in enumerate(chosen)}
        self._bookmarks.extend((mark, position[mark.page]) for mark in part.bookmarks if mark.page in position)
        if keep:
            self._sources[part.path] = source
        else:
            self._sources.pop(part.path, None)

    def release(self, path: Path) -> None:
        """Close a part kept open by `add(..., keep=True)`."""
        self._sources.pop(path, None)

    def _open(self, part: Part) -> _Source:
        reader = PdfReader(part.path)
        pages = list(reader.pages)  # pypdf puts inherited attributes (resources, media box) on each page
        if len(pages) != part.pages:
            raise ValueError(f"{part.path} has {len(pages)} pages, not the {part.pages} expected")
        catalog = cast(DictionaryObject, reader.trailer["/Root"].get_object())
        dests: list[tuple[str, Any]] = []
        names = cast(DictionaryObject | None, catalog.get("/Names"))
        if names is not None and "/Dests" in names:
            for name, dest in _name_tree(cast(DictionaryObject, names["/Dests"])):
                dest = dest.get_object()
                dests.append((name, dest["/D"] if isinstance(dest, DictionaryObject) else dest))
        source = _Source(reader, {p.indirect_reference.idnum: p for p in pages if p.indirect_reference}, dests)
        source.pages = pages
        if self._lang is None and not self._pages:
            self._lang = catalog.get("/Lang")
            info = cast(DictionaryObject | None, reader.trailer.get("/Info"))
            if info is not None:
                self._info = self._reserve()
                self._emit(self._info, self._copy(source, info.get_object()))
                self._drain(source)
        return source

    def _ref(self, source: _Source, old: IndirectObject) -> PdfObject:
        number = source.numbers.get(old.idnum)
        if number is None:
            if old.idnum in source.page_objects and old.idnum not in source.allowed:
                return NullObject()  # a page not chosen: never copied
            number = source.numbers[old.idnum] = self._reserve()
            source.todo.append(old)
        return IndirectObject(number, 0, None)

    def _copy(self, source: _Source, obj: Any) -> Any:
        if isinstance(obj, IndirectObject):
            return self._ref(source, obj)
        if isinstance(obj, StreamObject):
            stream = DecodedStreamObject()
            stream.update({key: self._copy(source, value) for key, value in dict.items(obj)})
            stream.set_data(obj._data)  # the bytes as stored, still encoded
            return stream
        if isinstance(obj, DictionaryObject):
            return DictionaryObject({key: self._copy(source, value) for key, value in dict.items(obj)})
        if isinstance(obj, ArrayObject):
            return ArrayObject(self._copy(source, value) for value in list.__iter__(obj))
        return obj

    def _drain(self, source: _Source) -> None:
        while source.todo:
            old = source.todo.pop()
            page = source.page_objects.get(old.idnum)
            if page is not None:
                copied = DictionaryObject(
                    {
                        key: self._copy(source, value)
                        for key, value in dict.items(page)
                        if key not in ("/Parent", "/StructParents")
                    }
                )
                copied[NameObject("/Parent")] = IndirectObject(2, 0, None)
                if self._stamp is not None:
                    self._stamp_page(source, page, copied, self._position[source.numbers[old.idnum]])
            else:
                copied = self._copy(source, source.reader.get_object(old))
            self._emit(source.numbers[old.idnum], copied)

    def _stamp_page(self, source: _Source, page: Any, copied: DictionaryObject, number: int) -> None:
        """Draw the stamp's line on a copied page: its content is wrapped in a saved graphics
        state (so that whatever it leaves set does not move the line; a content that
        restores more states than it saves, which WeasyPrint never writes, is not
        supported), and the line's font is added to the page's own resources (a copy:
        other pages may share the part's)."""
        assert self._stamp is not None
        if self._stamp_objects is None:
            font, save = self._reserve(), self._reserve()
            self._emit(
                font,
                DictionaryObject(
                    {
                        NameObject("/Type"): NameObject("/Font"),
                        NameObject("/Subtype"): NameObject("/Type1"),
                        NameObject("/BaseFont"): NameObject("/Helvetica"),
                        NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
                    }
                ),
            )
            opening = DecodedStreamObject()
            opening.set_data(b"q\n")
            self._emit(save, opening)
            self._stamp_objects = (font, save)
        font, save = self._stamp_objects
        resources = page.get("/Resources")
        resources = DictionaryObject() if resources is None else resources.get_object()
        own = DictionaryObject({key: self._copy(source, value) for key, value in dict.items(resources)})
        fonts = resources.get("/Font")
        fonts = DictionaryObject() if fonts is None else fonts.get_object()
        own_fonts = DictionaryObject({key: self._copy(source, value) for key, value in dict.items(fonts)})
        own_fonts[NameObject("/SipStamp")] = IndirectObject(font, 0, None)
        own[NameObject("/Font")] = own_fonts
        copied[NameObject("/Resources")] = own
        x, y = STAMP_AT
        line = DecodedStreamObject()
        line.set_data(
            b"\nQ\nq BT 0.35 g /SipStamp %.1f Tf %.1f %.1f Td %s Tj ET Q\n"
            % (STAMP_SIZE, x, y, _pdf_text(self._stamp(number)))
        )
        closing = self._reserve()
        self._emit(closing, line)
        # the page's content: one stream, or an array of them (given directly or by reference)
        original = dict.get(page, "/Contents")
        if isinstance(original, IndirectObject):
            original = source.reader.get_object(original)
        if isinstance(original, ArrayObject):
            parts = [self._copy(source, item) for item in list.__iter__(original)]
        else:
            parts = [] if original is None else [dict.__getitem__(copied, "/Contents")]
        copied[NameObject("/Contents")] = ArrayObject(
            [IndirectObject(save, 0, None), *parts, IndirectObject(closing, 0, None)]
        )

    def close(self) -> None:
        """Write the page tree, the outline, the catalog and the cross-reference table."""
        self._sources.clear()
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
