"""The Steering Committee's review bundles: one per member for a round's meeting.

Each application's dossier is rendered once and shared by every member's bundle;
what differs per member is the cover (their conflicts) and which dossiers are left
out. A bundle is versioned: preparing again with unchanged inputs makes no new
version, and a new version says what changed. The member is sent a link (outbox);
every download through it is audited."""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babel.dates import format_date
from babel.numbers import format_decimal
from markupsafe import Markup
from sqlalchemy import func
from sqlmodel import Session, col, select

from domain.committee import (
    Member,
)
from domain.lifecycle import DECISIONS, Role, Status
from domain.rounds import RoundStatus
from engine.services import audit, outbox
from engine.services.committee.meeting import Committee, committee_of
from engine.services.errors import Gone, NotAllowed, NotFound
from engine.services.parties import PartyNames, party_names
from engine.services.report import REGIONS, TEMPLATES, report_rows
from engine.services.review.views import ReviewedApplication, review_summaries
from engine.services.rounds import get_round
from engine.services.stages import to_committee_hint
from engine.services.tokens import derive_bundle_token, token_hash
from engine.settings import Settings
from engine.tables import (
    Application,
    CommitteeBundle,
    CommitteeMember,
    ScreeningRecord,
)
from notifications import BUNDLE_LINK_PLACEHOLDER, LANGUAGES, labels, render
from notifications.reasons import PLURAL_REASONS, REASONS, reason_text
from notifications.render import N_, environment, first_of_month, translations

if TYPE_CHECKING:
    from engine.pdfjoin import Part

#: Applications before the committee: on its agenda, or decided at its meeting.
ON_AGENDA = {Status.READY_FOR_COMMITTEE, *DECISIONS}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def pdf_renderer() -> Any | None:
    """WeasyPrint's HTML class when it is installed with its system libraries (Pango),
    and pypdf (which joins the parts of a PDF bundle) with it, else None: the bundles
    are then HTML only. Both come with the `pdf` extra."""
    try:
        import pypdf  # noqa: F401, PLC0415 - optional
        from weasyprint import HTML  # noqa: PLC0415 - optional
    except (ImportError, OSError):
        return None
    return HTML


#: The version of the bundles' layout: a bundle laid out in an earlier one is made again,
#: and its version says so in one line rather than as a change of every part.
LAYOUT = "2: in the member's language"


@dataclass
class Shared:
    """What every member's bundle of a round has in common: the summary, the funds, the
    regional spread, and each dossier's content, rendered once per language (the
    members' languages) on first use."""

    committee: Committee
    summary: list[dict[str, Any]]
    agenda: list[Application]
    dossier_data: dict[str, dict[str, Any]]  # reference -> what its dossier shows
    funds_available: Decimal | None
    total_requested: Decimal
    spread: list[dict[str, Any]]
    has_gmp: bool
    names: PartyNames
    _dossiers: dict[tuple[str, str], Markup] = field(default_factory=dict)
    _digests: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def difference(self) -> Decimal | None:
        return None if self.funds_available is None else self.funds_available - self.total_requested

    def dossier(self, reference: str, language: str) -> Markup:
        """An application's dossier in `language` (rendered the first time)."""
        key = (language, reference)
        if key not in self._dossiers:
            html = (
                environment(language, TEMPLATES)
                .get_template("bundle_dossier.html")
                .render(a=self.dossier_data[reference], **bundle_words(language, self))
            )
            self._dossiers[key] = Markup(html)  # noqa: S704 - rendered by an autoescaping template
        return self._dossiers[key]

    def digests(self, language: str) -> dict[str, str]:
        """What a bundle in `language` is made of, part by part, as fingerprints (worked
        out once per language), with the version of the bundles' layout."""
        if language not in self._digests:
            found = {f"dossier {ref}": _digest(self.dossier(ref, language)) for ref in self.dossier_data}
            found["summary"] = _digest(repr((self.summary, self.spread)))
            found["funds"] = _digest(repr(self.funds_available))
            found["layout"] = LAYOUT
            self._digests[language] = found
        return dict(self._digests[language])


def shared_parts(session: Session, round_id: str) -> Shared:
    committee = committee_of(session, round_id)
    definition = committee.definition
    rows = report_rows(session, round_id)
    applications = {
        a.reference: a
        for a in session.exec(
            select(Application).where(Application.round_id == round_id).order_by(Application.reference)
        ).all()
    }
    records = {
        r.application_id: r
        for r in session.exec(select(ScreeningRecord).where(ScreeningRecord.round_id == round_id)).all()
    }
    has_gmp = definition.has_gmp_review
    gmp: dict[str, ReviewedApplication] = {}
    if has_gmp:
        for item in map(ReviewedApplication.of, review_summaries(session, round_id)):
            if not definition.review.reviewer_identities_to_committee:
                item = replace(item, reviews=[r.numbered(n) for n, r in enumerate(item.reviews, start=1)])
            gmp[item.reference] = item
    agenda = [a for a in applications.values() if a.status in ON_AGENDA]
    on_agenda = {a.reference for a in agenda}
    summary, dossiers = [], {}
    for row in rows:
        application = applications[row.reference]
        review = gmp.get(row.reference)
        common = dict(
            reference=row.reference,
            party=row.party,
            party_name=row.party_name,
            region=row.region,
            ldc=row.ldc,
            sids=row.sids,
            title=row.title,
            amount=row.amount_requested,
            verdict=row.verdict,
            score=row.weighted_score,
        )
        summary.append(
            dict(
                common,
                on_agenda=row.reference in on_agenda,
                gmp_recommendations=review.recommendations if review else {},
                gmp_disagreement=bool(review and review.disagreement),
            )
        )
        if row.reference not in on_agenda:
            continue
        record = records.get(application.id or 0)
        dossiers[row.reference] = dict(
            common,
            overridden=row.overridden,
            agency=application.applicant.get("executing_agency", {}).get("name", "—"),
            co_applicants=application.applicant.get("co_applicants", []),
            form_a=application.form_a,
            form_b=application.form_b,
            form_c=application.form_c,
            checks=record.checks if record else [],
            appraisal=record.appraisal if record else [],
            gmp=review,
        )
    requested = sum((a.amount_requested or Decimal(0) for a in agenda), Decimal(0))
    counts = Counter(r.region for r in rows)
    spread = [
        dict(
            region=region,
            received=counts[region],
            agenda=sum(1 for r in rows if r.region == region and r.reference in on_agenda),
            requested=sum(
                (r.amount_requested or Decimal(0) for r in rows if r.region == region and r.reference in on_agenda),
                Decimal(0),
            ),
        )
        for region in REGIONS.values()
        if counts[region]
    ]
    codes = {str(m.country) for m in committee.members} | {r.party for r in rows}
    codes |= {c for d in dossiers.values() for c in d["co_applicants"]}
    return Shared(
        committee,
        summary,
        agenda,
        dossiers,
        committee.meeting.funds_available,
        requested,
        spread,
        has_gmp,
        party_names(session, codes),
    )


def bundle_words(language: str, shared: Shared) -> dict[str, Any]:
    """What the bundles' templates need to say the engine's words in `language` (fields,
    codes, verdicts, amounts, Parties, the round's criteria), passed to them with the rest."""
    definition = shared.committee.definition
    currency = definition.currency
    gettext = translations(language).gettext
    criteria = {c.id: c for c in definition.criteria}
    technical = {c.id: c for c in definition.review.criteria} if definition.has_gmp_review else {}

    def number(value: Any) -> str:
        if value is None or value == "":
            return "—"
        try:
            return format_decimal(Decimal(str(value)), locale=language)
        except (InvalidOperation, ValueError):
            return str(value)

    def day_of(value: Any) -> str:
        try:
            day = date.fromisoformat(str(value))
            return first_of_month(format_date(day, format="long", locale=language), day.day, language)
        except ValueError:
            return str(value) if value else "—"

    def reason(check: dict[str, Any]) -> str:
        code = check.get("code") or ""
        if check.get("outcome") == "pass":
            return ""
        if code in REASONS or code in PLURAL_REASONS:
            return reason_text(code, check.get("params") or {}, language, currency)
        return str(check.get("reason") or "")

    def technical_title(item: Any) -> str:
        return technical[item.id].title_in(language) if item.id in technical else str(item.title)

    def disagreement(review: ReviewedApplication) -> str:
        """What the reviewers disagree on (as `domain.review.summarise` finds it), in words."""
        found = [
            gettext("%(criterion)s: scores %(scores)s")
            % {"criterion": technical_title(c), "scores": ", ".join(map(str, c.scores))}
            for c in review.criteria
            if c.disagreement
        ]
        counts = review.recommendations
        if counts.get("do_not_support") and (counts.get("support") or counts.get("support_with_changes")):
            found.append(gettext("recommendations differ: some support, some do not"))
        return "; ".join(found)

    def criterion(item: dict[str, Any]) -> str:
        found = criteria.get(str(item.get("id")))
        return found.title_in(language) if found else str(item.get("title") or item.get("id"))

    return dict(
        money=lambda value, in_currency=None: (
            "—" if value is None else labels.money(value, in_currency or currency, language)
        ),
        number=number,
        day_of=day_of,
        label=lambda table, key: labels.label(getattr(labels, table), key, language),
        field_label=lambda name: labels.field_label(name, language),
        code=lambda value: labels.code(str(value or ""), language) if value else "—",
        party=lambda iso3, english: shared.names.name(iso3, language) if iso3 else english,
        verdict=lambda value: labels.label(labels.VERDICTS, str(value), language),
        why=lambda value: labels.label(labels.WITHHELD, str(value), language),
        step=lambda value: labels.label(labels.STEPS, str(value), language),
        outcome=lambda value: labels.label(labels.OUTCOMES, str(value), language),
        check=lambda value: labels.check_title(str(value), language, shared.names),
        reason=reason,
        criterion=criterion,
        technical=technical_title,
        disagreement=disagreement,
        recommendations=lambda counts: ", ".join(
            gettext("%(count)s × %(recommendation)s") % {"count": n, "recommendation": labels.code(k, language)}
            for k, n in counts.items()
            if n
        ),
        reviewer=lambda r: (
            gettext("Reviewer %(number)s") % {"number": r.reviewer.removeprefix("Reviewer ")}
            if r.email is None and r.reviewer.startswith("Reviewer ")
            else r.reviewer
        ),
        confidential=_css_string(gettext("Confidential – for the members of the Steering Committee")),
        round_heading=_css_string(definition.title_in(language)),
        round_title=definition.title_in(language),
        language=language,
    )


def _css_string(text: str) -> Markup:
    """Text as a quoted CSS string, to go into a stylesheet as it is (HTML escapes mean
    nothing there): quotes, backslashes and angle brackets escaped the CSS way."""
    escaped = "".join(f"\\{ord(c):x} " if c in '"\\<>' or ord(c) < 32 else c for c in text)
    return Markup(f'"{escaped}"')  # noqa: S704 - escaped above for its place in a stylesheet


def withheld_for(member: Member, shared: Shared) -> dict[str, str]:
    """The applications `member` takes no part in, and why."""
    email = str(member.email).lower()
    found = {}
    for application in shared.agenda:
        why = shared.committee.conflicts(application).get(email)
        if why:
            found[application.reference] = why
    return found


def render_bundle(
    member: Member,
    shared: Shared,
    *,
    version: int,
    changes: list[str],
    prepared: datetime,
    front_only: bool = False,
) -> str:
    """The member's bundle as HTML, in their language (`front_only`: without the dossiers,
    for the PDF, which takes their pages from the shared `PdfPages`). A dossier withheld
    from them is one line of the agenda, not a page."""
    language = member.language
    withheld = withheld_for(member, shared)
    committee = shared.committee
    words = bundle_words(language, shared)
    agenda_lines = [
        dict(
            reference=a.reference,
            party=shared.names.name(a.party, language),
            title=a.title,
            withheld=a.reference in withheld,
            why=words["why"](withheld.get(a.reference, "")),
        )
        for a in shared.agenda
    ]
    return (
        environment(language, TEMPLATES)
        .get_template("bundle.html")
        .render(
            **words,
            front_only=front_only,
            meeting=committee.meeting,
            timezone=committee.definition.timezone,
            prepared=prepared,
            version=version,
            changes=changes,
            member=dict(
                name=member.name,
                role=labels.label(labels.ROLES, member.role, language),
                country_name=shared.names.name(member.country, language),
            ),
            withheld=withheld,
            composition=[
                labels.gap_words(g.kind, g.count, g.expected, REGIONS.get(g.region, "") if g.region else "", language)
                for g in committee.gaps
            ],
            agenda=shared.agenda,
            agenda_lines=agenda_lines,
            summary=shared.summary,
            funds_available=shared.funds_available,
            total_requested=shared.total_requested,
            difference=shared.difference,
            spread=shared.spread,
            has_gmp=shared.has_gmp,
            dossiers=[]
            if front_only
            else [shared.dossier(a.reference, language) for a in shared.agenda if a.reference not in withheld],
        )
    )


#: Dossiers laid out together in one shared part of the PDF: one font subset for them
#: all (subsetting costs about as much as laying out a dossier), and the memory of this
#: many dossiers' layout at a time, whatever the number of applications.
DOSSIERS_PER_PART = 20


@dataclass(frozen=True)
class DossierPart:
    """A shared part of the PDF: consecutive dossiers, and each one's pages in it."""

    part: Part
    spans: dict[str, range]


def dossier_groups(shared: Shared, per_part: int) -> list[list[str]]:
    """The agenda's dossiers in runs of at most `per_part`, laid out together; a dossier
    withheld from any member is laid out alone. Pages laid out together share their
    resources (fonts with every character the part uses, images, drawings), which go
    with any of their pages into a member's file: a run shared only by dossiers that
    every member may see keeps a withheld dossier's content out of the files of the
    members it is withheld from."""
    groups: list[list[str]] = []
    run: list[str] = []
    for application in shared.agenda:
        if shared.committee.conflicts(application):
            if run:
                groups.append(run)
                run = []
            groups.append([application.reference])
            continue
        run.append(application.reference)
        if len(run) == per_part:
            groups.append(run)
            run = []
    if run:
        groups.append(run)
    return groups


class PdfPages:
    """The PDF of the bundles in bounded memory. The dossiers are laid out once per
    language, a few at a time (`DOSSIERS_PER_PART`, each from a new page) into PDF files
    of their own in `folder`, shared by every member's bundle in that language; a
    member's PDF is their own front and the pages of the dossiers they may see, joined on
    disk as it is written (`engine.pdfjoin`), each page stamped with the round, the
    bundle's version and its number among them all. A withheld dossier's pages are never
    copied into that member's file (it is one line of their agenda). The outline and the
    summary's links to the dossiers are those of the bundle laid out as one document."""

    def __init__(self, renderer: Any, shared: Shared, folder: Path, per_part: int | None = None):
        self.renderer, self.shared, self.folder = renderer, shared, folder
        self.groups = dossier_groups(shared, per_part or DOSSIERS_PER_PART)
        self.group_of = {ref: n for n, group in enumerate(self.groups) for ref in group}
        self.parts: dict[tuple[str, int], DossierPart] = {}

    def dossiers(self, group: int, language: str) -> DossierPart:
        """The shared part holding the `group`-th run of dossiers in `language` (laid out the first time)."""
        from engine.pdfjoin import Part, weasyprint_bookmarks  # noqa: PLC0415 - with the `pdf` extra

        if (language, group) not in self.parts:
            references = self.groups[group]
            html = (
                environment(language, TEMPLATES)
                .get_template("bundle_page.html")
                .render(
                    dossiers=[self.shared.dossier(ref, language) for ref in references],
                    **bundle_words(language, self.shared),
                )
            )
            document = self.renderer(string=html).render()
            starts: dict[str, int] = {}
            for number, page in enumerate(document.pages):
                for name in page.anchors:
                    if name in self.group_of and name not in starts:
                        starts[name] = number
            bounds = [starts[ref] for ref in references] + [len(document.pages)]
            if bounds != sorted(bounds):
                raise RuntimeError(f"the dossiers {references[0]} to {references[-1]} were laid out out of order")
            path = self.folder / f"dossiers-{language}-{group}.pdf"
            document.write_pdf(path)
            self.parts[language, group] = DossierPart(
                Part(path, len(document.pages), weasyprint_bookmarks(document)),
                {ref: range(bounds[i], bounds[i + 1]) for i, ref in enumerate(references)},
            )
        return self.parts[language, group]

    def write(self, member: Member, front_html: str, path: Path, version: int) -> int:
        """Write the member's PDF; returns its number of pages."""
        from engine.pdfjoin import Part, PdfJoin, weasyprint_bookmarks  # noqa: PLC0415 - with the `pdf` extra

        language = member.language
        withheld = withheld_for(member, self.shared)
        references = [a.reference for a in self.shared.agenda if a.reference not in withheld]
        document = self.renderer(string=front_html).render()
        # The front's links go to dossiers in other parts: stand-in anchors keep WeasyPrint
        # from dropping them as links to nowhere (the joined file points them to the dossiers).
        for name in references:
            document.pages[0].anchors.setdefault(name, (0, 0, 0, 0))
        front = Part(self.folder / "front.pdf", len(document.pages), weasyprint_bookmarks(document))
        document.write_pdf(front.path)
        del document
        parts = [self.dossiers(self.group_of[ref], language) for ref in references]
        total = front.pages + sum(len(part.spans[ref]) for part, ref in zip(parts, references, strict=True))
        words = translations(language).gettext("%(round)s – version %(version)s – page %(page)s of %(pages)s")
        round_title = self.shared.committee.definition.title_in(language)
        if len(round_title) > 80:  # the stamp is one line at the foot of the page
            round_title = round_title[:79] + "…"

        def stamp(page: int) -> str:
            return words % {"round": round_title, "version": version, "page": page, "pages": total}

        with PdfJoin(path, stamp=stamp) as pdf:
            pdf.add(front, skip_anchors=frozenset(references))
            current: Path | None = None
            for part, ref in zip(parts, references, strict=True):
                if current is not None and current != part.part.path:
                    pdf.release(current)
                current = part.part.path
                pdf.add(part.part, part.spans[ref], keep=True)
        return pdf.pages


@contextmanager
def pdf_pages(renderer: Any | None, shared: Shared, scratch: Path) -> Iterator[PdfPages | None]:
    """`PdfPages` with a scratch folder for its parts under `scratch` (the engine's own
    files, not the system's temporary folder: the parts hold confidential dossiers),
    removed afterwards (None without a renderer)."""
    if renderer is None:
        yield None
        return
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sip-bundle-parts-", dir=scratch) as folder:
        yield PdfPages(renderer, shared, Path(folder))


def member_digests(member: Member, shared: Shared) -> dict[str, str]:
    """What a member's bundle is made of: the shared parts in their language, less the
    withheld dossiers."""
    withheld = withheld_for(member, shared)
    digests = {k: v for k, v in shared.digests(member.language).items() if k.removeprefix("dossier ") not in withheld}
    digests.update({f"withheld {ref}": why for ref, why in withheld.items()})
    meeting, definition = shared.committee.meeting, shared.committee.definition
    digests["cover"] = _digest(
        repr(
            (
                member.language,
                definition.title_in(member.language),
                meeting.starts_on,
                meeting.ends_on,
                meeting.place,
                member.name,
                member.role,
                shared.names.name(member.country, member.language),
                shared.committee.composition,
                shared.has_gmp,
            )
        )
    )
    return digests


#: What a change of each part of a bundle is called, in the member's words.
PARTS = {
    "summary": N_("the summary of the applications or the regional spread"),
    "funds": N_("the funds available"),
    "cover": N_("the cover: the meeting (date, place), the committee's composition or your membership"),
}
CHANGES = {
    "added": N_("added: %(part)s"),
    "removed": N_("removed: %(part)s"),
    "changed": N_("changed: %(part)s"),
}


def describe_changes(before: dict[str, str], after: dict[str, str], language: str = "en") -> list[str]:
    """In the member's words, what differs between two versions' parts."""
    gettext = translations(language).gettext
    if before.get("layout") != after.get("layout"):  # every part is laid out anew: one line says so
        return [gettext("a new layout of the bundle, in your language; its contents are as before unless listed")]
    changes = []
    for part in sorted(set(before) | set(after)):
        kind, _, reference = part.partition(" ")
        if part in PARTS:
            what = gettext(PARTS[part])
        elif kind == "dossier":
            what = gettext("the dossier of %(reference)s") % {"reference": reference}
        elif kind == "withheld":
            what = gettext("the note that you take no part in the decision on %(reference)s") % {"reference": reference}
        else:
            what = part
        if part not in before:
            changes.append(gettext(CHANGES["added"]) % {"part": what})
        elif part not in after:
            changes.append(gettext(CHANGES["removed"]) % {"part": what})
        elif before[part] != after[part]:
            changes.append(gettext(CHANGES["changed"]) % {"part": what})
    return changes


@dataclass
class BundleLine:
    email: str
    name: str
    version: int
    changes: list[str]
    path: str
    pdf: str | None
    withheld: list[str]
    new: bool
    pdf_pages: int | None = None  # when its PDF was made in this run


@dataclass
class BundlesSummary:
    round: str
    prepared: int = 0  # new versions
    unchanged: int = 0
    notified: int = 0
    pdf: bool = False
    members: list[BundleLine] = field(default_factory=list)


def file_name(email: str) -> str:
    """A member's e-mail as a file name (any character a path could misread replaced)."""
    return re.sub(r"[^\w.@+-]", "_", email)


def bundle_file(round_id: str, email: str, version: int) -> str:
    """Where a bundle is kept, relative to the files folder (SIP_FILES_DIR) that every
    machine of the engine reads."""
    return f"bundles/{file_name(round_id)}/{file_name(email)}.v{version}.html"


def stored_file(settings: Settings, relative: str) -> Path:
    return settings.files_folder / relative


def check_bundles(session: Session, round_id: str) -> None:
    """What `prepare_bundles` refuses, checked beforehand (the API does, before it starts the flow)."""
    row = get_round(session, round_id)
    if RoundStatus(row.status) not in (RoundStatus.COMMITTEE, RoundStatus.DECIDED):
        raise NotAllowed(
            f"round {round_id} is {row.status}: the bundles are prepared once screening (and the GMP "
            f"review, where the round has it) is done and the round is with the committee",
            hints=(to_committee_hint(session, round_id),),
        )
    committee_of(session, round_id)  # a meeting is scheduled and members serve on its date


def prepare_bundles(
    session: Session,
    settings: Settings,
    round_id: str,
    *,
    actor: str,
    at: datetime,
    pdf: bool = True,
    only: set[str] | None = None,
    pdf_later: PdfLater | None = None,
) -> BundlesSummary:
    """Prepare every member's bundle for the round's meeting (`only`: these members'
    e-mails); a member whose bundle would not change keeps their version and gets no
    new message, unless its link was withdrawn (then a new version brings a new link).

    With `pdf_later`, the PDFs are not laid out here but listed in it, for
    `pdf_later.run()` once this transaction has committed: laying them out takes
    seconds per member, and on SQLite every other writer waits for this transaction.
    A PDF that is then not written (the process stops) is written by the next run."""
    get_round(session, round_id, for_update=True)
    check_bundles(session, round_id)
    shared = shared_parts(session, round_id)
    renderer = pdf_renderer() if pdf else None
    summary = BundlesSummary(round_id, pdf=renderer is not None)
    latest = {
        b.email: b
        for b in session.exec(
            select(CommitteeBundle).where(CommitteeBundle.round_id == round_id).order_by(col(CommitteeBundle.version))
        ).all()
    }
    prepared = at
    messages = []
    scratch = stored_file(settings, "bundles")
    if pdf_later is not None:
        pdf_later.shared, pdf_later.renderer, pdf_later.scratch, pdf_later.summary = shared, renderer, scratch, summary
    with pdf_pages(None if pdf_later is not None else renderer, shared, scratch) as laid_out:
        pdfs: PdfPages | PdfLater | None = pdf_later if pdf_later is not None and renderer else laid_out
        for member in shared.committee.members:
            email = str(member.email).lower()
            if only is not None and email not in only:
                continue
            digests = member_digests(member, shared)
            previous = latest.get(email)
            withheld = sorted(withheld_for(member, shared))
            if previous is not None and previous.digests == digests and previous.revoked_at is None:
                html_path = stored_file(settings, previous.path)
                pdf_path = html_path.with_suffix(".pdf")
                pages = None
                if pdfs is not None and not pdf_path.exists():  # prepared before without a PDF
                    pages = pdfs.write(
                        member,
                        render_bundle(
                            member,
                            shared,
                            version=previous.version,
                            changes=[translations(member.language).gettext(c) for c in previous.changes],
                            prepared=prepared,
                            front_only=True,
                        ),
                        pdf_path,
                        previous.version,
                    )
                summary.unchanged += 1
                if isinstance(pdfs, PdfLater) and pages is not None:
                    pdfs.lines.append(len(summary.members))
                summary.members.append(
                    BundleLine(
                        email,
                        member.name,
                        previous.version,
                        [],
                        str(html_path),
                        _pdf_of(html_path),
                        withheld,
                        new=False,
                        pdf_pages=pages,
                    )
                )
                continue
            version = previous.version + 1 if previous else 1
            # What changed: in English for the secretariat (kept with the version, audited,
            # listed by the API and the CLI), and in the member's words for them.
            changes = describe_changes(previous.digests, digests) if previous else []
            said = describe_changes(previous.digests, digests, member.language) if previous else []
            if previous is not None and previous.revoked_at is not None:
                changes.append(WITHDRAWN_LINK)
                said.append(translations(member.language).gettext(WITHDRAWN_LINK))
            html = render_bundle(member, shared, version=version, changes=said, prepared=prepared)
            relative = bundle_file(round_id, email, version)
            path = stored_file(settings, relative)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(html, encoding="utf-8")
            pages = None
            if pdfs is not None:
                pages = pdfs.write(
                    member,
                    render_bundle(member, shared, version=version, changes=said, prepared=prepared, front_only=True),
                    path.with_suffix(".pdf"),
                    version,
                )
            if isinstance(pdfs, PdfLater) and pages is not None:
                pdfs.lines.append(len(summary.members))
            key = f"bundle_ready:{round_id}:{email}:v{version}"
            session.add(
                CommitteeBundle(
                    round_id=round_id,
                    email=email,
                    version=version,
                    path=relative,
                    sha256=_digest(html),
                    digests=digests,
                    changes=changes,
                    created_at=at,
                    token_hash=token_hash(derive_bundle_token(settings.key(), key)),
                )
            )
            audit.record(
                session,
                at=at,
                actor=actor,
                role=Role.SECRETARIAT,
                action="bundle.prepared",
                subject_type="member",
                subject_id=email,
                details={"round": round_id, "version": version, "changes": changes, "withheld": withheld},
            )
            messages.append(_bundle_message(settings, member, shared, key, version, said, at))
            summary.prepared += 1
            summary.members.append(
                BundleLine(
                    email,
                    member.name,
                    version,
                    changes,
                    str(path),
                    str(path.with_suffix(".pdf")) if renderer else None,
                    withheld,
                    new=True,
                    pdf_pages=pages,
                )
            )
    summary.notified = outbox.enqueue_rows(session, messages)
    return summary


@dataclass
class PdfLater:
    """The PDFs `prepare_bundles` leaves to be laid out after its transaction: `write()`
    lays them out (each as `PdfPages.write` would) and fills in their files and page
    counts in the summary."""

    jobs: list[tuple[Member, str, Path, int]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the summary's lines of those PDFs, in order
    shared: Shared | None = None
    renderer: Any | None = None
    scratch: Path | None = None
    summary: BundlesSummary | None = None

    def write(self, member: Member, front_html: str, path: Path, version: int) -> int:
        """Listed for later; 0 stands for the pages, counted when it is written."""
        self.jobs.append((member, front_html, path, version))
        return 0

    def run(self) -> None:
        if not self.jobs or self.shared is None or self.scratch is None or self.summary is None:
            return
        with pdf_pages(self.renderer, self.shared, self.scratch) as pdfs:
            assert pdfs is not None
            for (member, front_html, path, version), line in zip(self.jobs, self.lines, strict=True):
                self.summary.members[line].pdf_pages = pdfs.write(member, front_html, path, version)
                self.summary.members[line].pdf = str(path)


def _pdf_of(path: Path) -> str | None:
    pdf = path.with_suffix(".pdf")
    return str(pdf) if pdf.exists() else None


def _language_of_member(session: Session, email: str) -> str:
    """The language of a member's latest term (their messages are in it)."""
    language = session.exec(
        select(CommitteeMember.language)
        .where(CommitteeMember.email == email)
        .order_by(col(CommitteeMember.term_start).desc())
    ).first()
    return language or "en"


def download_url(settings: Settings) -> str:
    return f"{settings.public_base_url.rstrip('/')}/committee/bundle?token={BUNDLE_LINK_PLACEHOLDER}"


def _bundle_message(
    settings: Settings, member: Member, shared: Shared, key: str, version: int, changes: list[str], at: datetime
) -> dict[str, Any]:
    definition = shared.committee.definition
    language = member.language
    message = render(
        "bundle_ready",
        language,
        dict(
            language=language,
            name=member.name,
            round_title=definition.title_in(language),
            meeting_on=shared.committee.meeting.starts_on,
            place=shared.committee.meeting.place,
            version=version,
            changes=changes,
            count=len(shared.agenda),
            url=download_url(settings),
            programme_email=settings.programme_email,
        ),
        overrides=settings.templates_dir,
    )
    return outbox.message_row(
        key=key,
        kind="bundle_ready",
        recipient=str(member.email).lower(),
        message=message,
        at=at,
        round_id=definition.id,
    )


#: Said of a new version made because the link of the latest was withdrawn.
WITHDRAWN_LINK = N_("a new link: the link of the previous version was withdrawn")

#: A bundle's link works until this many days after the meeting's last day.
LINK_DAYS_AFTER_MEETING = 30


def _valid_link(session: Session, token: str | None, *, at: datetime) -> tuple[CommitteeBundle, Committee, str]:
    """The bundle of a member's link that still works, its round's committee and the
    member's language; `NotFound` or `Gone` otherwise (see `open_bundle`)."""
    bundle = (
        session.exec(select(CommitteeBundle).where(CommitteeBundle.token_hash == token_hash(token or ""))).first()
        if token
        else None
    )
    if bundle is None:
        raise NotFound(
            "no bundle for this link; ask the secretariat for the link of your latest bundle", reason="bundle_unknown"
        )
    language = _language_of_member(session, bundle.email)
    if bundle.revoked_at is not None:
        raise Gone(
            f"this link was withdrawn on {bundle.revoked_at:%Y-%m-%d}; ask the secretariat",
            reason="bundle_withdrawn",
            language=language,
            actor=bundle.email,
        )
    latest = session.exec(
        select(func.max(CommitteeBundle.version)).where(
            CommitteeBundle.round_id == bundle.round_id, CommitteeBundle.email == bundle.email
        )
    ).one()
    if bundle.version != latest:
        raise Gone(
            f"this link is to version {bundle.version} of your bundle; version {latest} replaced it: "
            "use the link of its message",
            reason="bundle_replaced",
            language=language,
            actor=bundle.email,
        )
    committee = committee_of(session, bundle.round_id)
    if bundle.email not in {str(m.email).lower() for m in committee.members}:
        raise Gone(
            "you are no longer on this round's committee; ask the secretariat",
            reason="bundle_left",
            language=language,
            actor=bundle.email,
        )
    if at.date() > committee.meeting.ends_on + timedelta(days=LINK_DAYS_AFTER_MEETING):
        raise Gone(
            f"this link expired {LINK_DAYS_AFTER_MEETING} days after the meeting; ask the secretariat",
            reason="bundle_expired",
            language=language,
            actor=bundle.email,
        )
    return bundle, committee, language


def open_bundle(
    session: Session, settings: Settings, token: str | None, *, at: datetime, pdf: bool = False
) -> tuple[CommitteeBundle, Path]:
    """The bundle a member's link opens (audited): only the member's latest version,
    only while they are on the round's committee, only until a month after the meeting,
    and never once withdrawn (they left the committee, or the secretariat withdrew their
    access). An unknown link is `NotFound`; one that worked and no longer does is `Gone`
    (each says so in the member's language on their error page)."""
    bundle, _committee, language = _valid_link(session, token, at=at)
    path = stored_file(settings, bundle.path)
    path = path.with_suffix(".pdf") if pdf else path
    if not path.exists():
        raise NotFound(
            f"the {'PDF' if pdf else 'file'} of this bundle is not on this server (its files folder, "
            "SIP_FILES_DIR, must be shared by every machine of the engine); ask the secretariat",
            reason="bundle_missing",
            language=language,
            actor=bundle.email,
        )
    audit.record(
        session,
        at=at,
        actor=bundle.email,
        role=Role.COMMITTEE,
        action="bundle.downloaded",
        subject_type="member",
        subject_id=bundle.email,
        details={"round": bundle.round_id, "version": bundle.version, "format": "pdf" if pdf else "html"},
    )
    return bundle, path


@dataclass(frozen=True)
class AgendaLine:
    reference: str
    title: str | None
    party: str  # its name, in the member's language
    amount_requested: Decimal | None
    withheld: str | None  # why the member takes no part in it, if they do not


@dataclass(frozen=True)
class BundleLanding:
    """What a member's link opens first, in their language: their meeting and the agenda
    of their bundle as it was prepared, its version, and whether its PDF is there."""

    name: str
    language: str
    round_title: str
    version: int
    starts_on: date
    ends_on: date
    place: str
    agenda: list[AgendaLine]
    pdf: bool
    currency: str


def bundle_landing(
    session: Session, settings: Settings, token: str | None, *, at: datetime, language: str | None = None
) -> BundleLanding:
    """The page of a member's link, in `language` if the page asks for one of the
    engine's, else the member's (the same checks as `open_bundle`; nothing is
    downloaded, so nothing is recorded but a refusal)."""
    bundle, committee, own = _valid_link(session, token, at=at)
    language = language if language in LANGUAGES else own
    member = next((m for m in committee.members if str(m.email).lower() == bundle.email), None)
    if member is None:  # `_valid_link` found them on the committee; a change under it says so too
        raise Gone("you are no longer on this round's committee; ask the secretariat", reason="bundle_left")
    # The agenda of the bundle the member has (as it was prepared), not of the round today:
    # its dossiers, and those withheld from it.
    withheld = {k.removeprefix("withheld "): why for k, why in bundle.digests.items() if k.startswith("withheld ")}
    on_it = {k.removeprefix("dossier ") for k in bundle.digests if k.startswith("dossier ")} | set(withheld)
    applications = session.exec(
        select(Application)
        .where(Application.round_id == bundle.round_id, col(Application.reference).in_(on_it))
        .order_by(Application.reference)
    ).all()
    names = party_names(session, {a.party for a in applications})
    agenda = [
        AgendaLine(a.reference, a.title, names.name(a.party, language), a.amount_requested, withheld.get(a.reference))
        for a in applications
    ]
    return BundleLanding(
        name=member.name,
        language=language,
        round_title=committee.definition.title_in(language),
        version=bundle.version,
        starts_on=committee.meeting.starts_on,
        ends_on=committee.meeting.ends_on,
        place=committee.meeting.place,
        agenda=agenda,
        pdf=stored_file(settings, bundle.path).with_suffix(".pdf").exists(),
        currency=committee.definition.currency,
    )
