"""A Party to the Convention, as the Parties register describes it. Pure."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RegionalGroup = Literal["AFRICA", "ASIA_PACIFIC", "CEE", "GRULAC", "WEOG"]


class Party(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    iso3: str = Field(pattern=r"^[A-Z]{3}$")
    iso2: str = Field(pattern=r"^[A-Z]{2}$")
    name: str = Field(min_length=1, max_length=200)
    un_regional_group: RegionalGroup | None = None
    #: The date the Convention entered into force for the Party; None when unknown
    #: (screening must flag that for a person, never pass or fail it silently).
    party_since: date | None = None
    ldc: bool
    sids: bool
    economy: Literal["developing", "transition", "developed"]
    source_note: str | None = None
