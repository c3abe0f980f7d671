"""Make LLM text safe to hand to a TTS engine.

An LLM's text is untrusted input to the synthesizer: a NUL makes espeak-ng's C API raise, other
control characters are read out or crash engines, and markup (HTML/SSML tags, Markdown code
marks, stray escapes) is spoken literally. `sanitize_for_tts` is pure and applied to every
chunk before TTS; what the caller hears is then exactly the text that reached the engine.
"""

from __future__ import annotations

import html
import re
import unicodedata

_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:_-]*(?:\s[^<>]*)?/?>")
_MARKDOWN = str.maketrans("", "", "*#`_~|")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,!?;:…])")


def sanitize_for_tts(text: str) -> str:
    """Text a TTS engine can speak as meant.

    Removes NUL and every other control/format character (Unicode categories ``Cc``, ``Cf``,
    ``Cs``, ``Co``, ``Cn``; tabs and line breaks become spaces), HTML/XML/SSML tags, Markdown
    emphasis/code/table marks and link targets (the link text is kept), decodes HTML entities,
    and collapses whitespace.

    Args:
        text: any string from the LLM.

    Returns:
        The cleaned text, possibly empty (then there is nothing to speak).
    """
    text = html.unescape(text)
    text = _TAG.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = text.translate(_MARKDOWN)
    out: list[str] = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\t\n\r\v\f" or cat in ("Zl", "Zp"):
            out.append(" ")
        elif cat[0] == "C":
            continue
        else:
            out.append(ch)
    return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join("".join(out).split()))
