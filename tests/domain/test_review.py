import tomllib
from pathlib import Path

from domain.review import AreaMap, ConflictSource, Reviewer, Subject, assign, conflicts, greedy, load_spread

AREAS = AreaMap.model_validate(tomllib.loads(
    (Path(__file__).resolve().parents[2] / "engine" / "data" / "partnership_areas.toml").read_text()))


def reviewer(n: int, country: str = "NOR", areas: tuple[str, ...] = ("artisanal_gold_mining",), load: int = 5,
             organisation: str = "Some Institute") -> Reviewer:
    return Reviewer(name=f"R{n}", email=f"r{n}@example.org", organisation=organisation, country=country,
                    areas=areas, languages=("en",), max_load=load)


def subject(ref: str, countries: tuple[str, ...] = ("BEN",), areas: tuple[str, ...] = ("artisanal_gold_mining",),
            agency: str = "Ministry") -> Subject:
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
        ConflictSource.COUNTRY, ConflictSource.ORGANISATION, ConflictSource.DECLARED]
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
    reviewers = [reviewer(1, areas=("artisanal_gold_mining", "cement"), load=1),
                 reviewer(2, areas=("artisanal_gold_mining",), load=1)]
    subjects = [subject("GOLD"), subject("CEMENT", areas=("cement",))]
    assert load_spread(greedy(subjects, reviewers, 1), reviewers) == (1, 1)
    placements = assign(subjects, reviewers, 1)
    assert {p.reference: p.reviewers for p in placements} == {"GOLD": ["r2@example.org"],
                                                              "CEMENT": ["r1@example.org"]}
    assert assign(subjects, reviewers, 1) == placements  # deterministic
