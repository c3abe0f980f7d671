"""`earshot eval`: the evaluation harnesses, one sub-verb each.

Each verb lives in its own module under ``earshot.evals`` exposing

* ``add_arguments(parser: argparse.ArgumentParser) -> None`` — its flags;
* ``run(args: argparse.Namespace) -> int`` — the exit code;
* optionally ``HELP: str`` — the one-line help (else the first line of the module docstring).

Verbs are registered from `EVAL_VERBS`; a verb whose module is not written yet is skipped, so
the command works while the harnesses are added one by one.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from types import ModuleType

EVAL_VERBS: tuple[tuple[str, str], ...] = (
    ("latency", "earshot.evals.latency"),
    # Registration hooks for harnesses written separately: each module is imported if present.
    ("endpointing", "earshot.evals.endpointing"),
    ("bargein", "earshot.evals.bargein"),
    ("stt", "earshot.evals.stt"),
    ("converse", "earshot.evals.converse_batch"),
    ("levers", "earshot.evals.levers"),
)
"""(verb, module) pairs, in the order ``earshot eval --help`` lists them."""


def _import_verb(module_name: str) -> ModuleType | None:
    """The verb's module, or ``None`` when exactly that module does not exist (yet).

    Raises:
        ModuleNotFoundError: the module exists but one of *its* imports is missing.
    """
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise


def _verb_entry_points(
    module: ModuleType,
) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
    add_arguments = getattr(module, "add_arguments", None)
    run = getattr(module, "run", None)
    if not callable(add_arguments) or not callable(run):
        raise TypeError(
            f"{module.__name__} must define add_arguments(parser) and run(args) -> int "
            "to be an `earshot eval` verb"
        )
    return add_arguments, run


def _help_of(module: ModuleType) -> tuple[str, str | None]:
    doc = (module.__doc__ or "").strip()
    help_text = getattr(module, "HELP", None)
    if not isinstance(help_text, str):
        help_text = doc.splitlines()[0] if doc else module.__name__
    return help_text, doc or None


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``earshot eval`` and every available verb; each verb sets ``func``.

    ``earshot.cli.main`` calls ``args.func(args)``; ``earshot eval`` with no verb prints the
    list of verbs and returns 2.

    Raises:
        TypeError: a verb module lacks ``add_arguments`` or ``run``.
        ModuleNotFoundError: a verb module exists but fails to import a dependency.
    """
    parser = subparsers.add_parser(
        "eval",
        help="evaluation harnesses: stage latency, end-pointing, barge-in, STT word error rate",
        description=(
            "Evaluation harnesses that run the streaming loop on real recordings and report "
            "what it measured. Run `earshot eval VERB --help` for each one's options."
        ),
    )
    verbs = parser.add_subparsers(dest="eval_verb", metavar="VERB")
    for verb, module_name in EVAL_VERBS:
        module = _import_verb(module_name)
        if module is None:
            continue
        add_arguments, run = _verb_entry_points(module)
        help_text, description = _help_of(module)
        verb_parser = verbs.add_parser(
            verb,
            help=help_text,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_arguments(verb_parser)
        verb_parser.set_defaults(func=run)

    def no_verb(_: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=no_verb)
    return parser
