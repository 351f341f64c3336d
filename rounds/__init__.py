"""Round definitions as data: one TOML file per round, validated on load
(`engine.services.rounds.read_round_file`). The real rounds of the programme ship here."""

from pathlib import Path

ROUNDS_DIR = Path(__file__).resolve().parent


def shipped_round_files() -> list[Path]:
    return sorted(ROUNDS_DIR.glob("*.toml"))
