import tomllib
from pathlib import Path

import pytest

from domain.review import (
    AreaMap,
    ConflictSource,
    Reviewer,
    Subject,
    assign,
    conflicts,
    greedy,
    load_spread,
    spread_lower_bound,
    summarise,
)

AREAS = AreaMap.model_validate(
    tomllib.loads((Path(__file__).resolve().parents[2] / "engine" / "data" / "partnership_areas.toml").read_text())
)


def reviewer(
    n: int,
    country: str = "NOR",
    areas: tuple[str, ...] = ("artisanal_gold_mining",),
    load: int = 5,
    organisation: str = "Some Institute",
) -> Reviewer:
    return Reviewer(
        name=f"R{n}",
        email=f"r{n}@example.org",
        organisation=organisation,
        country=country,
        areas=areas,
        languages=("en",),
        max_load=load,
    )


def subject(
    ref: str,
    countries: tuple[str, ...] = ("BEN",),
    areas: tuple[str, ...] = ("artisanal_gold_mining",),
    agency: str = "Ministry",
) -> Subject:
    return Subject(ref, frozenset(countries), agency, frozenset(areas))


def test_articles_and_words_in_three_languages_point_to_partnership_areas() -> None:
    assert AREAS.areas_of([7, 18], "Réduction du mercure dans l'orpaillage") == {"artisanal_gold_mining"}
    assert AREAS.areas_of([], "Gestión de desechos con mercurio en hospitales") == {"waste_management"}
    assert AREAS.areas_of([8], "Emissions from coal-fired boilers") == {"coal_combustion", "cement"}
    assert AREAS.areas_of([16], "A public health strategy") == set()


def test_a_reviewer_is_conflicted_by_country_organisation_or_declaration() -> None:
    r = reviewer(1, country="BEN", organisation="Ministère du Cadre de Vie")
    s = subject("A", countries=("TGO", "BEN"), agency="  ministère du cadre de vie ")
    assert conflicts(r, s, {("r1@example.org", "A"): "advised the applicant"}) == [
        ConflictSource.COUNTRY,
        ConflictSource.ORGANISATION,
        ConflictSource.DECLARED,
    ]
    assert conflicts(reviewer(2), subject("A"), {}) == []


def test_every_application_gets_its_reviewers_within_load_and_never_a_conflicted_one() -> None:
    reviewers = [reviewer(i, country="BEN" if i == 0 else "NOR", load=3) for i in range(4)]
    placements = assign([subject(f"A{i}") for i in range(4)], reviewers, 2)
    assert all(len(p.reviewers) == 2 and p.unfilled == 0 for p in placements)
    assert all("r0@example.org" not in p.reviewers for p in placements)  # from Benin, as every applicant
    assert all("conflict of interest (country)" in p.reasons[0] for p in placements)
    assert load_spread(placements, reviewers[1:]) == (1, 0)  # 8 places over 3 reviewers: 3, 3, 2


def test_when_no_unconflicted_reviewer_covers_the_area_the_place_stays_unfilled_and_says_why() -> None:
    [placement] = assign([subject("A", areas=("cement",))], [reviewer(1)], 2)
    assert placement.reviewers == [] and placement.unfilled == 2
    assert placement.reasons == ["no reviewer without a conflict covers cement"]
    [nothing] = assign([subject("B", areas=())], [reviewer(1)], 2)
    assert "matches no partnership area" in nothing.reasons[0]


def test_the_most_constrained_applications_are_served_first_where_greedy_leaves_places_empty() -> None:
    # R1 covers both areas; R2 only gold mining. One place each: greedy gives R1 to the first
    # application (gold mining) and leaves the cement one without a reviewer.
    reviewers = [
        reviewer(1, areas=("artisanal_gold_mining", "cement"), load=1),
        reviewer(2, areas=("artisanal_gold_mining",), load=1),
    ]
    subjects = [subject("GOLD"), subject("CEMENT", areas=("cement",))]
    assert load_spread(greedy(subjects, reviewers, 1), reviewers) == (1, 1)
    placements = assign(subjects, reviewers, 1)
    assert {p.reference: p.reviewers for p in placements} == {"GOLD": ["r2@example.org"], "CEMENT": ["r1@example.org"]}
    assert assign(subjects, reviewers, 1) == placements  # deterministic


def test_an_application_keeps_its_reviewers_and_one_who_declined_is_not_proposed_again() -> None:
    from dataclasses import replace

    reviewers = [reviewer(i) for i in range(4)]
    placed = assign(
        [replace(subject("A"), assigned=("r1@example.org",))],
        reviewers,
        2,
        loads={"r1@example.org": 1},
        excluded={("r0@example.org", "A"): "declined the invitation"},
    )
    assert placed[0].reviewers == ["r1@example.org", "r2@example.org"] and placed[0].unfilled == 0
    assert "r0@example.org not chosen: declined the invitation" in placed[0].reasons


def test_an_assignment_moves_only_as_its_rules_allow() -> None:
    import pytest

    from domain.review import AssignmentError, AssignmentState, plan_assignment

    assert plan_assignment(AssignmentState.PROPOSED, "invite", "secretariat") is AssignmentState.INVITED
    assert plan_assignment(AssignmentState.INVITED, "decline", "reviewer") is AssignmentState.DECLINED
    assert plan_assignment(AssignmentState.DECLINED, "restore", "secretariat") is AssignmentState.PROPOSED
    with pytest.raises(AssignmentError, match="cannot submit: it is only proposed"):
        plan_assignment(AssignmentState.PROPOSED, "submit", "reviewer")
    with pytest.raises(AssignmentError, match="cannot remove: the review was submitted"):
        plan_assignment(AssignmentState.SUBMITTED, "remove", "secretariat")
    with pytest.raises(AssignmentError, match="a reviewer may not remove"):
        plan_assignment(AssignmentState.INVITED, "remove", "reviewer")


def test_a_review_is_checked_against_the_rounds_scales_and_complete_only_when_submitted() -> None:
    from domain.review import ReviewDraft, review_problems
    from domain.rounds import ReviewSettings

    criteria = ReviewSettings().criteria
    draft = ReviewDraft(scores={"feasibility": 6, "charm": 3})
    assert [(p.field, p.message) for p in review_problems(draft, criteria, final=False)] == [
        ("scores.feasibility", "6 is not on the scale 1, 2, 3, 4, 5"),
        (
            "scores.charm",
            "is not a technical criterion of this round (criteria: technical_soundness, "
            "area_relevance, feasibility, expected_results)",
        ),
    ]
    assert review_problems(ReviewDraft(scores={"feasibility": 3}), criteria, final=False) == []
    final = {p.field for p in review_problems(ReviewDraft(scores={"feasibility": 3}), criteria, final=True)}
    assert final == {
        "scores.technical_soundness",
        "scores.area_relevance",
        "scores.expected_results",
        "recommendation",
        "comments_for_committee",
    }


def test_reviews_are_summarised_per_criterion_with_disagreement_at_the_rounds_threshold() -> None:
    from domain.rounds import TechnicalCriterion

    criteria = [
        TechnicalCriterion(id="a", title="A", scale=[1, 2, 3, 4, 5]),
        TechnicalCriterion(id="b", title="B", scale=[1, 2, 3, 4, 5]),
    ]
    reviews = [({"a": 4, "b": 2}, "support"), ({"a": 5, "b": 5}, "support_with_changes")]
    calm = summarise("X", 3, reviews, criteria, threshold=4)
    assert [(c.id, str(c.mean), c.spread, c.disagreement) for c in calm.criteria] == [
        ("a", "4.5", 1, False),
        ("b", "3.5", 3, False),
    ]
    assert not calm.disagreement and calm.short and calm.recommendations["support"] == 1
    strict = summarise("X", 2, reviews, criteria, threshold=3)
    assert strict.disagreement and strict.why == ("b: scores 2, 5",) and not strict.short
    none = summarise("X", 2, [], criteria, threshold=3)
    assert none.criteria[0].mean is None and none.submitted == 0 and none.short and not none.disagreement


def test_the_review_stage_reminds_before_the_due_date_and_is_overdue_after_it() -> None:
    from datetime import date

    from domain.review import StageStep, due_date, stage_step
    from domain.rounds import ReviewSettings

    due = date(2024, 8, 26)
    assert due_date(ReviewSettings(), date(2024, 8, 5)) == due
    assert due_date(ReviewSettings(due=date(2024, 9, 1)), date(2024, 8, 5)) == date(2024, 9, 1)
    assert [stage_step(date(2024, 8, d), due, 3) for d in (22, 23, 26, 27)] == [
        StageStep.NOTHING,
        StageStep.REMIND,
        StageStep.REMIND,
        StageStep.OVERDUE,
    ]


def test_the_spread_bound_is_what_the_smallest_limit_leaves_and_one_where_places_do_not_divide() -> None:
    # 100 places: the two large reviewers must hold 42 and 41 when one can take only 17.
    assert spread_lower_bound([17, 50, 50], 100) == 42 - 17
    assert spread_lower_bound([10, 10, 10], 9) == 0
    assert spread_lower_bound([10, 10, 10], 7) == 1  # 3, 2, 2
    assert spread_lower_bound([], 0) == 0
    with pytest.raises(ValueError, match="do not fit"):
        spread_lower_bound([1, 2], 4)


def test_the_engines_assignment_reaches_the_spread_bound_where_nothing_else_constrains_it() -> None:
    reviewers = [reviewer(i, load=load) for i, load in enumerate((3, 8, 8))]
    placements = assign([subject(f"A{i}") for i in range(16)], reviewers, 1)
    assert load_spread(placements, reviewers) == (spread_lower_bound([3, 8, 8], 16), 0)
