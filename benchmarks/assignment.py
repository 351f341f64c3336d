"""Reviewer assignment benchmark: N applications across M reviewers, the engine's
assignment next to a greedy baseline in the same run: time, load spread (max minus
min assignments per reviewer) and places left unfilled.

    .venv/bin/python benchmarks/assignment.py [--applications 10000] [--reviewers 500] [--per 2]"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.review import Reviewer, Subject, assign, greedy, load_spread  # noqa: E402

AREAS = ["artisanal_gold_mining", "chlor_alkali", "air_transport_fate_research", "products", "coal_combustion",
         "waste_management", "supply_storage", "cement"]
#: Skewed like real rounds: most applications are about gold mining, products or waste.
AREA_WEIGHTS = [30, 3, 8, 20, 8, 20, 6, 5]
COUNTRIES = [f"C{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(60)]  # CAA, CAB, ...


def generate(applications: int, reviewers: int, per: int, seed: int = 7) -> tuple[list[Subject], list[Reviewer]]:
    rng = random.Random(seed)
    subjects = [Subject(f"APP-{i:05d}", frozenset(rng.sample(COUNTRIES, rng.choice([1, 1, 1, 2]))),
                        f"Agency {rng.randrange(400)}",
                        frozenset(rng.choices(AREAS, AREA_WEIGHTS, k=rng.choice([1, 2]))))
                for i in range(applications)]
    capacity = applications * per * 1.3 / reviewers  # 30 % more places than needed, in all
    people = [Reviewer(name=f"Reviewer {j}", email=f"r{j}@example.org", organisation=f"Agency {rng.randrange(400)}",
                       country=rng.choice(COUNTRIES), areas=tuple(sorted(set(rng.choices(AREAS, AREA_WEIGHTS, k=3)))),
                       languages=("en",), max_load=max(1, int(rng.gauss(capacity, capacity / 4))))
              for j in range(reviewers)]
    return subjects, people


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--applications", type=int, default=10_000)
    parser.add_argument("--reviewers", type=int, default=500)
    parser.add_argument("--per", type=int, default=2, help="reviewers per application")
    args = parser.parse_args()
    subjects, reviewers = generate(args.applications, args.reviewers, args.per)
    print(f"assignment benchmark: {args.applications:,} applications, {args.reviewers} reviewers, "
          f"{args.per} per application")
    for name, run in (("greedy baseline", lambda: greedy(subjects, reviewers, args.per)),
                      ("engine", lambda: assign(subjects, reviewers, args.per))):
        started = time.perf_counter()
        placements = run()
        seconds = time.perf_counter() - started
        spread, unfilled = load_spread(placements, reviewers)
        print(f"  {name:<16} {seconds:7.2f} s   load spread (max - min per reviewer) {spread:4d}   "
              f"places unfilled {unfilled:6,}")


if __name__ == "__main__":
    main()
