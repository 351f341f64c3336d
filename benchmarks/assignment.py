"""Reviewer assignment benchmark: N applications across M reviewers, the engine's
assignment next to a greedy baseline in the same run: time, load spread (max minus
min assignments per reviewer) and places left unfilled. Beside each spread, the least
any assignment of the same places can have under the reviewers' limits (the smallest
limit holds the least loaded reviewer down while the others must take the rest), and
whether the spread reaches it: the target is to reach it.

With `--database`, it also times the services the `assign-gmp-reviewers` and
`invite-gmp-reviewers` flows run, on a screened round 4 of N applications in SQLite
(reading the round, writing the proposals; then the invitations, one per reviewer).

    .venv/bin/python benchmarks/assignment.py [--applications 10000] [--reviewers 500] [--per 2] [--database]
                                    [--repeats 3] [--quick]"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Figure, Stats, report, report_stats  # noqa: E402

from domain.review import Reviewer, Subject, assign, greedy, load_spread, spread_lower_bound  # noqa: E402

AREAS = [
    "artisanal_gold_mining",
    "chlor_alkali",
    "air_transport_fate_research",
    "products",
    "coal_combustion",
    "waste_management",
    "supply_storage",
    "cement",
]
#: Skewed like real rounds: most applications are about gold mining, products or waste.
AREA_WEIGHTS = [30, 3, 8, 20, 8, 20, 6, 5]
COUNTRIES = [f"C{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(60)]  # CAA, CAB, ...


def generate(applications: int, reviewers: int, per: int, seed: int = 7) -> tuple[list[Subject], list[Reviewer]]:
    rng = random.Random(seed)
    subjects = [
        Subject(
            f"APP-{i:05d}",
            frozenset(rng.sample(COUNTRIES, rng.choice([1, 1, 1, 2]))),
            f"Agency {rng.randrange(400)}",
            frozenset(rng.choices(AREAS, AREA_WEIGHTS, k=rng.choice([1, 2]))),
        )
        for i in range(applications)
    ]
    capacity = applications * per * 1.3 / reviewers  # 30 % more places than needed, in all
    people = [
        Reviewer(
            name=f"Reviewer {j}",
            email=f"r{j}@example.org",
            organisation=f"Agency {rng.randrange(400)}",
            country=rng.choice(COUNTRIES),
            areas=tuple(sorted(set(rng.choices(AREAS, AREA_WEIGHTS, k=3)))),
            languages=("en",),
            max_load=max(1, int(rng.gauss(capacity, capacity / 4))),
        )
        for j in range(reviewers)
    ]
    return subjects, people


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--applications", type=int, default=10_000)
    parser.add_argument("--reviewers", type=int, default=500)
    parser.add_argument("--per", type=int, default=2, help="reviewers per application")
    parser.add_argument(
        "--database",
        action="store_true",
        help="also time the proposal and the invitations through the services, on SQLite",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 applications and 100 reviewers")
    args = parser.parse_args()
    if args.quick:
        args.applications, args.reviewers = 2_000, 100
    subjects, reviewers = generate(args.applications, args.reviewers, args.per)
    print(
        f"assignment benchmark: {args.applications:,} applications, {args.reviewers} reviewers, "
        f"{args.per} per application, {args.repeats} runs of each"
    )
    times: dict[str, list[float]] = {}
    for name, run in (
        ("greedy baseline", lambda: greedy(subjects, reviewers, args.per)),
        ("engine", lambda: assign(subjects, reviewers, args.per)),
    ):
        for _ in range(args.repeats):  # the same instance each time: the placements do not change
            started = time.perf_counter()
            placements = run()
            times.setdefault(name, []).append(time.perf_counter() - started)
        spread, unfilled = load_spread(placements, reviewers)
        # The least spread any assignment of the places filled can have, from the limits alone.
        bound = spread_lower_bound([r.max_load for r in reviewers], args.applications * args.per - unfilled)
        report_stats("assignment", f"{name}, seconds at {args.applications:,}", Stats(tuple(times[name])), "s")
        report(
            Figure(
                benchmark="assignment",
                name=f"{name}, load spread (max - min per reviewer)",
                value=spread,
                unit="assignments",
                target=f"= {bound} (the least possible)" if name == "engine" else None,
                met=spread == bound if name == "engine" else None,
                note=f"{unfilled:,} places unfilled; the least spread possible is {bound}",
            )
        )
    if args.database:
        in_database(args.applications, reviewers)


def in_database(count: int, reviewers: list[Reviewer]) -> None:
    """Round 4 with `count` screened applications in a fresh SQLite database; then the
    proposal and the invitations as the flows run them, each one transaction."""
    import json
    import tempfile
    from datetime import UTC, datetime

    from intake import documents

    from engine.db import unit_of_work
    from engine.services.intake import import_batch
    from engine.services.review.assignment import assign_reviewers
    from engine.services.review.invitations import invite
    from engine.services.review.register import load_reviewers
    from engine.services.rounds import open_round
    from engine.services.screening import screen_batch, start_screening, to_screen
    from engine.services.setup import prepare
    from engine.settings import Settings

    round_id, now = "sip-2024-r4", datetime(2024, 8, 5, tzinfo=UTC)
    settings = Settings(SIP_DATA_DIR=Path(tempfile.mkdtemp()), SIP_SECRET_KEY="b" * 40)
    rt = prepare(settings)
    print(f"  in the database (SQLite): building a screened round of {count:,} applications...", flush=True)
    with unit_of_work(rt.engine) as session:
        open_round(session, round_id, actor="bench", at=datetime(2024, 4, 25, tzinfo=UTC))
    docs = []
    for raw in documents(count):
        doc = json.loads(raw)
        doc.update(round=round_id, received_at="2024-07-01T10:00:00+02:00")
        docs.append(json.dumps(doc).encode())
    for start in range(0, count, 500):
        batch = [(str(start + i), d) for i, d in enumerate(docs[start : start + 500])]
        import_batch(rt.engine, settings, round_id, batch, actor="bench", now=now)
    with unit_of_work(rt.engine) as session:
        start_screening(session, round_id, actor="bench", at=now)
        ids = to_screen(session, round_id)
    for start in range(0, len(ids), 500):
        screen_batch(rt.engine, settings, round_id, ids[start : start + 500], actor="bench", at=now)
    with unit_of_work(rt.engine) as session:  # the generated reviewers, none from an applicant Party
        load_reviewers(
            session, [r.model_copy(update={"country": "NOR"}) for r in reviewers], source="bench", actor="bench", at=now
        )
    started = time.perf_counter()
    with unit_of_work(rt.engine) as session:
        placements = assign_reviewers(session, round_id, actor="bench", at=now)
    proposed = time.perf_counter() - started
    started = time.perf_counter()
    with unit_of_work(rt.engine) as session:
        invited = invite(session, settings, round_id, actor="bench", at=now)
    print(
        f"  propose (service) {proposed:6.2f} s   {len(placements):,} screened applications: "
        f"{sum(len(p.reviewers) for p in placements):,} places filled, {sum(p.unfilled for p in placements):,} "
        "unfilled (the generated reviewers' loads fit the generated areas, not these applications')"
    )
    print(
        f"  invite (service)  {time.perf_counter() - started:6.2f} s   {invited.invited:,} assignments, "
        f"{invited.reviewers} invitations queued"
    )


if __name__ == "__main__":
    main()
