"""Build an end-of-turn policy from its command-line name (``--endpointer fixed|smart|model``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from earshot.turns.endpointer import Endpointer, FixedEndpointer
from earshot.turns.endpointing_rules import load_rules
from earshot.turns.smart import SmartEndpointer

if TYPE_CHECKING:
    from earshot.turns.eot_features import LmTurnScorer

EndpointerName = Literal["fixed", "smart", "model"]
ENDPOINTER_NAMES: tuple[EndpointerName, ...] = ("fixed", "smart", "model")


def make_endpointer(
    name: str,
    silence_ms: float = 500.0,
    rules_path: str | os.PathLike[str] | None = None,
    dynamic: bool = False,
    acoustic: bool | None = None,
    threshold: float | None = None,
    language_model: bool = True,
    now_ms: Callable[[], float] | None = None,
    scorer: LmTurnScorer | None = None,
) -> Endpointer:
    """The end-of-turn policy called ``name``.

    Args:
        name: "fixed" (a silence threshold), "smart" (rules on the partial transcript) or
            "model" (the learned end-of-turn model, `earshot.turns.model_endpointer`).
        silence_ms: the fixed policy's threshold (ms); the smart policy takes its bounds from
            its rules file instead.
        rules_path: a smart-policy rules YAML file; None uses the packaged rules.
        dynamic: smart policy only: adapt the bounds to the user's pauses.
        acoustic: smart policy only: also use final pitch and energy cues (praat-parselmouth).
            None (default) means on for "smart": on the noise-mixed end-pointing evaluation the
            transcript alone cut no fewer turns than a fixed 500 ms, while transcript plus
            prosody cut fewer and ended sooner (see ``earshot eval endpointing``).
        threshold: model policy only: P(end) at which the turn ends (None: calibrated).
        language_model: model policy only: read the transcript with the language model.
        now_ms: model policy only: the session clock's ``now_ms``, to charge compute.
        scorer: model policy only: a language-model scorer to share (e.g. one for all the
            calls of a server); None starts one of its own.

    Raises:
        ValueError: unknown ``name``, or smart-only options given with "fixed".
        RulesError: the rules file is missing or invalid (a ValueError).
        ImportError: ``acoustic=True`` without praat-parselmouth installed; the model policy
            with ``language_model=True`` without llama-cpp-python (names the extra).
    """
    if name == "fixed":
        extras = [
            flag
            for flag, given in (
                ("a rules file", rules_path is not None),
                ("dynamic mode", dynamic),
                ("acoustic cues", bool(acoustic)),
                ("a P(end) threshold", threshold is not None),
            )
            if given
        ]
        if extras:
            raise ValueError(
                f"{', '.join(extras)} only apply to the smart end-pointer; "
                "use --endpointer smart or drop them"
            )
        return FixedEndpointer(silence_ms)
    if name == "model":
        from earshot.turns.eot_features import LmTurnScorer
        from earshot.turns.model_endpointer import ModelEndpointer

        if scorer is None and language_model:
            scorer = LmTurnScorer()
        return ModelEndpointer(
            threshold=threshold, scorer=scorer, prosody=acoustic is not False, now_ms=now_ms
        )
    if name == "smart":
        return SmartEndpointer(
            load_rules(rules_path), dynamic=dynamic, acoustic=acoustic is None or acoustic
        )
    raise ValueError(f"unknown end-pointer {name!r}; choose one of {', '.join(ENDPOINTER_NAMES)}")
