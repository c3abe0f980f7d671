"""The smart end-pointer's rules: bounds and word lists, loaded from a YAML file.

The packaged file ``earshot/data/endpointing/rules.yaml`` documents every key and its source;
a user copies it, edits it and passes its path. Every key is required and unknown keys are
rejected, so a typo fails loudly instead of silently keeping a default.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from earshot.inputs import read_text_file

PACKAGED_RULES = "data/endpointing/rules.yaml"
"""Path of the default rules inside the ``earshot`` package."""


class RulesError(ValueError):
    """A rules file cannot be used; the message names the file, the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BoundsMs(_Strict):
    """Silence bounds in ms; see the packaged rules file for what selects each one."""

    min: float = Field(gt=0)
    max: float = Field(gt=0)
    base: float = Field(gt=0)
    complete: float = Field(gt=0)
    incomplete: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> BoundsMs:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must not exceed max ({self.max:g})")
        for key in ("base", "complete", "incomplete"):
            value = getattr(self, key)
            if not self.min <= value <= self.max:
                raise ValueError(
                    f"{key} ({value:g}) must lie between min ({self.min:g}) and max ({self.max:g})"
                )
        return self


class DynamicRules(_Strict):
    """Dynamic-mode parameters: ``base = clamp(ema_pause * factor + margin_ms, min, max)``."""

    alpha: float = Field(gt=0, le=1)
    factor: float = Field(gt=0)
    margin_ms: float = Field(ge=0)
    min_pause_ms: float = Field(ge=0)


class AcousticRules(_Strict):
    """Thresholds and adjustments for the prosodic cues (see `earshot.turns.acoustic`)."""

    pitch_fall_semitones: float = Field(gt=0)
    pitch_rise_semitones: float = Field(gt=0)
    pitch_flat_semitones: float = Field(ge=0)
    energy_decay_db_per_s: float = Field(lt=0)
    shorten_ms: float = Field(ge=0)
    lengthen_ms: float = Field(ge=0)


class PunctuationRules(_Strict):
    """Trailing marks written by punctuating recognisers (pocketsphinx writes none)."""

    terminal: tuple[str, ...]
    continuing: tuple[str, ...]

    @field_validator("terminal", "continuing")
    @classmethod
    def _non_empty_marks(cls, marks: tuple[str, ...]) -> tuple[str, ...]:
        for mark in marks:
            if not mark.strip():
                raise ValueError("punctuation marks must be non-blank strings")
        return tuple(mark.strip() for mark in marks)


Phrase = tuple[str, ...]
"""A lower-case word sequence matched against the last words of a transcript."""


def _phrases(entries: Any) -> tuple[Phrase, ...]:
    if not isinstance(entries, list | tuple):
        raise ValueError("must be a list of words or phrases")
    phrases: list[Phrase] = []
    for entry in entries:
        if isinstance(entry, bool):
            raise ValueError(
                f"an entry reads as {entry}: YAML takes a bare on/off/yes/no for a boolean; "
                "quote the word"
            )
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"entries must be non-empty strings, got {entry!r}")
        phrases.append(tuple(entry.lower().split()))
    return tuple(phrases)


class WordRules(_Strict):
    """Word and phrase lists, each entry split into a lower-case word tuple."""

    final_phrases: tuple[Phrase, ...]
    self_corrections: tuple[Phrase, ...]
    hesitations: tuple[Phrase, ...]
    non_final: dict[str, tuple[Phrase, ...]]
    weak_final: tuple[Phrase, ...]

    @field_validator(
        "final_phrases", "self_corrections", "hesitations", "weak_final", mode="before"
    )
    @classmethod
    def _split(cls, entries: Any) -> tuple[Phrase, ...]:
        return _phrases(entries)

    @field_validator("non_final", mode="before")
    @classmethod
    def _split_groups(cls, groups: Any) -> dict[str, tuple[Phrase, ...]]:
        if not isinstance(groups, dict):
            raise ValueError("must map a group name to a list of words")
        return {str(name): _phrases(entries) for name, entries in groups.items()}

    def all_non_final(self) -> tuple[Phrase, ...]:
        """Every non-final phrase, all groups together."""
        return tuple(p for group in self.non_final.values() for p in group)


class EndpointingRules(_Strict):
    """Everything the smart end-pointer reads from its rules file."""

    bounds_ms: BoundsMs
    text_settle_ms: float = Field(ge=0)
    dynamic: DynamicRules
    acoustic: AcousticRules
    punctuation: PunctuationRules
    words: WordRules

    @model_validator(mode="after")
    def _settles_in_time(self) -> EndpointingRules:
        if self.text_settle_ms > self.bounds_ms.max:
            raise ValueError(
                f"text_settle_ms ({self.text_settle_ms:g}) must not exceed bounds_ms.max "
                f"({self.bounds_ms.max:g}): the settled transcript would never be used"
            )
        return self


def packaged_rules_path() -> Path:
    """Filesystem path of the packaged default rules file."""
    return Path(str(resources.files("earshot").joinpath(PACKAGED_RULES)))


def load_rules(path: str | os.PathLike[str] | None = None) -> EndpointingRules:
    """Load and validate end-pointing rules.

    Args:
        path: a rules YAML file; None loads the packaged defaults.

    Raises:
        RulesError: the file is missing, is not YAML, misses a key, has an unknown key or a
            value of the wrong type or range. The message names the file and the key.
    """
    p = packaged_rules_path() if path is None else Path(path)
    if not p.is_file():
        raise RulesError(
            f"{p}: no such rules file; give the path of a copy of {packaged_rules_path()}"
        )
    try:
        data = yaml.safe_load(read_text_file(p, "end-pointing rules file", RulesError))
    except yaml.YAMLError as exc:
        raise RulesError(f"{p}: not valid YAML ({exc}); fix the syntax") from exc
    if not isinstance(data, dict):
        raise RulesError(
            f"{p}: a rules file is a YAML mapping with the keys of {packaged_rules_path()}"
        )
    try:
        return EndpointingRules.model_validate(data)
    except ValidationError as exc:
        raise RulesError(_explain(p, exc)) from exc


def _explain(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid end-pointing rules"]
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "missing":
            lines.append(f"  missing key '{key}': add it (see {packaged_rules_path()})")
        elif err["type"] == "extra_forbidden":
            lines.append(f"  unknown key '{key}': remove it or fix its spelling")
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            given = err.get("input")
            shown = f" (got {given!r})" if isinstance(given, str | int | float | None) else ""
            lines.append(f"  key '{key}': {message}{shown}")
    return "\n".join(lines)
