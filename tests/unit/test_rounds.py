import tomllib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from domain.rounds import RoundStatus, accepts_applications, effective_status, plan_close, plan_open
from engine.services.errors import InvalidInput
from engine.services.rounds import parse_round, read_round_file
from rounds import shipped_round_files

REAL = {
    "sip-2018-r1": ("2018-06-05", "2018-08-31", False),
    "sip-2019-r2": ("2019-03-05", "2019-06-14", False),
    "sip-2020-r3": ("2020-12-15", "2021-03-18", False),
    "sip-2024-r4": ("2024-04-24", "2024-07-31", True),
}

MINIMAL = """
id = "test-round"
title = "Test"
opens_at = 2030-01-01T00:00:00+01:00
closes_at = 2030-03-31T23:59:59+02:00
currency = "USD"
amount_min = 50000
amount_max = 250000
stages = ["screening", "committee"]
criteria_set = "test"
[[criteria]]
id = "feasibility"
title = "Feasibility"
kind = "judgement"
weight = 1
scale = [0, 1, 2]
"""


def test_the_four_real_rounds_ship_with_their_real_dates_and_stages() -> None:
    definitions = {d.id: d for d in map(read_round_file, shipped_round_files())}
    assert set(definitions) == set(REAL)
    for round_id, (opens, closes, gmp) in REAL.items():
        d = definitions[round_id]
        assert d.opens_at.astimezone(d.zone).date().isoformat() == opens
        assert d.closes_at.astimezone(d.zone).date().isoformat() == closes
        assert d.has_gmp_review is gmp
        assert (d.amount_min, d.amount_max) == (Decimal("50000.00"), Decimal("250000.00"))
        assert d.criteria_set == "default" and len(d.criteria) >= 9


def _broken(replace: str, by: str) -> str:
    assert replace in MINIMAL
    return MINIMAL.replace(replace, by)


@pytest.mark.parametrize(
    "text,where,what",
    [
        (_broken("opens_at = 2030-01-01T00:00:00+01:00\n", ""), "opens_at", "is required"),
        (
            _broken("closes_at = 2030-03-31T23:59:59+02:00", "closes_at = 2029-12-31T00:00:00+01:00"),
            "(file)",
            "must be after opens_at",
        ),
        ('colour = "blue"\n' + MINIMAL, "colour", "not a key of a round definition"),
        (
            _broken("opens_at = 2030-01-01T00:00:00+01:00", "opens_at = 2030-01-01T00:00:00"),
            "opens_at",
            "needs a UTC offset",
        ),
        (_broken('stages = ["screening", "committee"]', 'stages = ["committee", "screening"]'), "stages", "order"),
        (_broken("weight = 1", "weight = -1"), "criteria[0].weight", "greater than or equal to 0"),
        (_broken("scale = [0, 1, 2]", "scale = []"), "criteria[0]", "needs a scale"),
        (
            MINIMAL + '[[criteria]]\nid = "feasibility"\ntitle = "Again"\nkind = "check"\nweight = 1\n'
            'rule = "consultation_confirmed"\n',
            "(file)",
            "criteria ids repeat: feasibility",
        ),
        (
            MINIMAL + '[[criteria]]\nid = "consulted"\ntitle = "Consulted"\nkind = "check"\nweight = 1\n',
            "criteria[1]",
            "a check needs the rule the engine evaluates",
        ),
        (
            MINIMAL + '[[criteria]]\nid = "consulted"\ntitle = "C"\nkind = "check"\nweight = 1\nrule = "magic"\n',
            "criteria[1].rule",
            "consultation_confirmed",
        ),
        (
            _broken('criteria_set = "test"', 'criteria_set = "test"\neligible_economies = []'),
            "eligible_economies",
            "at least 1 item",
        ),
    ],
)
def test_a_bad_round_file_is_refused_naming_the_file_and_key(text: str, where: str, what: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_round(text, "rounds/test.toml")
    paths = [e.path for e in caught.value.errors]
    assert f"rounds/test.toml: {where}" in paths, paths
    assert what in caught.value.message


def test_a_toml_syntax_error_names_the_line() -> None:
    with pytest.raises(InvalidInput, match=r"rounds/test.toml: not valid TOML: .*line 3"):
        parse_round('id = "x"\ntitle = "y"\nopens_at = = 1\n', "rounds/test.toml")


def test_an_application_one_second_early_is_accepted_and_one_second_late_refused() -> None:
    d = parse_round(MINIMAL, "t")
    assert accepts_applications(RoundStatus.OPEN, d, d.closes_at - timedelta(seconds=1))
    assert accepts_applications(RoundStatus.OPEN, d, d.closes_at)
    assert not accepts_applications(RoundStatus.OPEN, d, d.closes_at + timedelta(seconds=1))
    assert not accepts_applications(RoundStatus.OPEN, d, d.opens_at - timedelta(seconds=1))


def test_an_open_round_past_its_deadline_shows_as_closed() -> None:
    d = parse_round(MINIMAL, "t")
    assert effective_status(RoundStatus.OPEN, d, d.closes_at + timedelta(seconds=1)) is RoundStatus.CLOSED
    assert effective_status(RoundStatus.OPEN, d, d.closes_at) is RoundStatus.OPEN


def test_a_round_cannot_open_before_its_date_nor_close_early_without_a_reason() -> None:
    from domain.rounds import RoundActionError

    d = parse_round(MINIMAL, "t")
    with pytest.raises(RoundActionError, match="schedule the open-round flow"):
        plan_open(RoundStatus.DRAFT, d, d.opens_at - timedelta(seconds=1))
    with pytest.raises(RoundActionError, match="give a reason"):
        plan_close(RoundStatus.OPEN, d, d.closes_at)
    assert plan_close(RoundStatus.OPEN, d, d.closes_at, early_reason="funds exhausted") is RoundStatus.CLOSED


def test_shipped_round_files_are_plain_toml_a_secretariat_can_read() -> None:
    for path in shipped_round_files():
        data = tomllib.loads(path.read_text())
        assert {
            "id",
            "title",
            "opens_at",
            "closes_at",
            "currency",
            "amount_min",
            "amount_max",
            "stages",
            "criteria",
        } <= set(data)


def test_a_rounds_review_settings_are_checked_and_name_the_key_at_fault() -> None:
    text = MINIMAL.replace('stages = ["screening", "committee"]', 'stages = ["screening", "gmp_review", "committee"]')
    review = (
        text
        + """
[review]
due_days = 0
colour = "blue"
[[review.criteria]]
id = "soundness"
title = "Soundness"
scale = [1, 1]
"""
    )
    with pytest.raises(InvalidInput) as caught:
        parse_round(review, "r.toml")
    problems = {e.path: e.message for e in caught.value.errors}
    assert problems["r.toml: review.due_days"].startswith("Input should be greater than or equal to 1")
    assert problems["r.toml: review.colour"] == "is not a key of a round definition (check its spelling)"
    assert problems["r.toml: review.criteria[0].scale"] == "the scale repeats a value"
    defaults = parse_round(text, "r.toml").review
    assert defaults.criteria_set == "default" and len(defaults.criteria) == 4 and defaults.due_days == 21


def test_a_rounds_dates_call_for_its_opening_and_its_close_and_never_for_a_past_draft() -> None:
    from domain.rounds import dates_ahead, due_by_dates

    r = parse_round(MINIMAL, "t")
    before, during, after = r.opens_at - timedelta(hours=1), r.opens_at + timedelta(days=1), r.closes_at
    assert due_by_dates(RoundStatus.DRAFT, r, before) is None
    assert due_by_dates(RoundStatus.DRAFT, r, r.opens_at) is RoundStatus.OPEN
    assert due_by_dates(RoundStatus.OPEN, r, during) is None
    assert due_by_dates(RoundStatus.OPEN, r, after) is None  # the deadline's last second still takes applications
    assert due_by_dates(RoundStatus.OPEN, r, after + timedelta(seconds=1)) is RoundStatus.CLOSED
    assert due_by_dates(RoundStatus.DRAFT, r, after + timedelta(days=1)) is None  # the rounds of past years
    assert due_by_dates(RoundStatus.SCREENING, r, after + timedelta(days=1)) is None
    assert dates_ahead(RoundStatus.DRAFT, r, before, before + timedelta(days=1)) == [(RoundStatus.OPEN, r.opens_at)]
    closing = r.closes_at + timedelta(seconds=1)
    assert dates_ahead(RoundStatus.OPEN, r, closing - timedelta(hours=2), closing) == [(RoundStatus.CLOSED, closing)]
    assert dates_ahead(RoundStatus.OPEN, r, during, during + timedelta(days=1)) == []
    assert dates_ahead(RoundStatus.CLOSED, r, closing - timedelta(hours=2), closing) == []


def test_a_rounds_status_moves_only_as_its_table_says() -> None:
    from domain.rounds import ROUND_TRANSITIONS, RoundActionError, round_move

    reached = {RoundStatus.DRAFT} | {move.target for move in ROUND_TRANSITIONS.values()}
    assert reached == set(RoundStatus) - {RoundStatus.ARCHIVED}  # archiving is not built yet
    assert round_move(RoundStatus.REVIEW, "to_committee", "r").target is RoundStatus.COMMITTEE
    assert round_move(RoundStatus.SCREENING, "to_committee", "r").target is RoundStatus.COMMITTEE
    with pytest.raises(RoundActionError, match="round r is draft; it can only be moved to screening from closed"):
        round_move(RoundStatus.DRAFT, "start_screening", "r")
    with pytest.raises(RoundActionError, match="is decided; it can only be moved to open from draft"):
        round_move(RoundStatus.DECIDED, "open", "r")


def test_a_refused_move_hints_at_the_step_that_comes_next_and_at_nothing_once_it_is_past() -> None:
    from domain.hints import Hint, Step
    from domain.rounds import RoundActionError, RoundStatus, plan_committee, plan_review

    r4 = read_round_file(Path("rounds/sip-2024-r4.toml"))
    expected = {
        (plan_review, RoundStatus.CLOSED): (Hint(Step.SCREEN, round_id=r4.id),),
        (plan_review, RoundStatus.OPEN): (),
        (plan_committee, RoundStatus.CLOSED): (Hint(Step.SCREEN, round_id=r4.id),),
        (plan_committee, RoundStatus.SCREENING): (Hint(Step.INVITE_REVIEWERS, round_id=r4.id),),
    }
    for (plan, stored), hints in expected.items():
        with pytest.raises(RoundActionError) as refused:
            plan(stored, r4)
        assert refused.value.hints == hints, (plan.__name__, stored)
    assert plan_committee(RoundStatus.DECIDED, r4) is RoundStatus.DECIDED  # past it: nothing refused
    with pytest.raises(RoundActionError) as refused:
        plan_review(RoundStatus.COMMITTEE, r4)
    assert refused.value.hints == ()


def test_every_criterion_of_the_shipped_rounds_has_its_title_in_french_and_spanish() -> None:
    for path in shipped_round_files():
        definition = read_round_file(path)
        titled = [*definition.criteria, *(definition.review.criteria if definition.has_gmp_review else ())]
        untranslated = [f"{path.name}: {c.id}" for c in titled if set(c.title_translations) != {"fr", "es"}]
        assert untranslated == []
        assert all(c.title_in("en") == c.title and c.title_in("de") == c.title for c in titled)
    convention = next(c for c in read_round_file(shipped_round_files()[0]).criteria if c.id == "convention_obligations")
    assert convention.title_in("fr") == "Lien avec des obligations précises de la Convention"
