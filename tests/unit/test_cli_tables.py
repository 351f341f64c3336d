"""The command line's tables (`cli.common.print_table`) as a pipe or a test reads them:
plain text, whole values, and the same whatever the terminal or the environment."""

from __future__ import annotations

import pytest

from cli.common import PLAIN_WIDTH, print_table
from tests.tables import printed_row, table_rows

TITLE = (
    "Renforcement des capacités nationales pour la mise en œuvre de la Convention de Minamata: inventaire "
    "des émissions, gestion écologiquement rationnelle des déchets de mercure et sensibilisation des "
    "communautés d'orpailleurs artisanaux dans les régions du nord, avec un plan d'action national"
)


def test_a_table_to_a_pipe_is_plain_text_with_its_headers_and_each_value_whole(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # colour is for terminals only
    monkeypatch.setenv("COLUMNS", "40")  # a pipe is as wide as PLAIN_WIDTH, whatever the terminal
    print_table(
        ["reference", "Party", "amount", "title"],
        [
            ("SIP-2018-R1-0001", "BEN", "190,000", "Project [bold]one[/bold]"),
            ("SIP-2018-R1-0002", "CMR", None, "Two"),
            ("SIP-2018-R1-0003", "GHA", "5", TITLE),
        ],
        right={"amount"},
        row_styles=[None, "red", None],
    )
    out = capsys.readouterr().out
    assert "\x1b" not in out and all(line == line.rstrip() for line in out.splitlines())
    assert out.splitlines()[0].split() == ["reference", "Party", "amount", "title"]
    assert len(table_rows(out)) == 4  # the long title takes two lines
    assert max(len(line) for line in out.splitlines()) <= PLAIN_WIDTH
    printed_row(out, "SIP-2018-R1-0001", "BEN", "190,000", "Project [bold]one[/bold]")  # no markup read in values
    printed_row(out, "SIP-2018-R1-0002", "CMR", "-", "Two")  # no value: "-"
    # The long title wraps between words: every word of it is there, none cut.
    assert [
        w for w in " ".join(table_rows(out)[2:]).split() if w not in ("SIP-2018-R1-0003", "GHA", "5")
    ] == TITLE.split()
    # Amounts are right-justified: they end in the same column.
    ends = {
        line.index(f" {amount}  ") + len(amount)
        for line, amount in zip(table_rows(out), ("190,000", "-", "5"), strict=False)
    }
    assert len(ends) == 1


def test_a_value_longer_than_the_width_folds_rather_than_being_cut(capsys: pytest.CaptureFixture[str]) -> None:
    path = "/srv/sip/incoming/" + "x" * (PLAIN_WIDTH + 40) + ".json"
    print_table(["outcome", "file"], [("refused", path)])
    out = capsys.readouterr().out
    assert "".join(line.removeprefix("refused").strip() for line in table_rows(out)) == path


def test_no_rows_print_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["reference"], [])
    assert capsys.readouterr().out == ""
