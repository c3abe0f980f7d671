"""Sentence chunking: cut a streamed LLM reply into pieces TTS can start on.

A pure, clock-free core. The response task pushes each text delta as it arrives and hands every
returned chunk to TTS at once; at the end of the reply it calls `flush` for the remainder::

    chunker = SentenceChunker()
    for delta in deltas:
        for chunk in chunker.push(delta):
            speak(chunk)
    for chunk in chunker.flush():
        speak(chunk)

Where a chunk ends:

* at a sentence end — ``.``, ``!``, ``?`` or ``…`` (closing quotes and brackets included)
  followed by whitespace — once the chunk holds at least ``min_chars`` characters. A ``.``
  after an abbreviation (``Mr.``, ``Dr.``, ``e.g.``, an initial ``J.``) is not a sentence end,
  nor is a ``.`` with no whitespace after it (``3.5``); so a ``.`` at the very end of the text
  so far waits for the next delta (or `flush`);
* at a line break (a list item, a heading), whatever its length;
* for the FIRST chunk of a reply only, also at a clause break — ``,`` ``;`` ``:`` followed by
  whitespace, an em dash, or a spaced `` - `` / `` – `` dash — once the chunk holds at least
  ``clause_min_chars`` characters, so TTS starts on the first clause instead of waiting for
  the whole first sentence ("Latency Budgeting" quotes 100–200 ms saved by streaming TTS).

and, whatever the punctuation, once the text waiting has been waiting ``max_wait_ms`` (since
its first character arrived, given as ``now_ms`` to `SentenceChunker.push`) or holds
``max_chars`` characters: it is cut at the last space (or wherever it is, with no space), so an
LLM that trickles tokens without punctuation is spoken as it comes instead of after a long
silence. ``push`` takes ``now_ms``; a caller that wants the time bound to fire between deltas
calls `SentenceChunker.poll` on a timer.

Markdown that TTS would read aloud (``*``, ``#``, `````) is removed, as are list bullets at
the start of a line and a dash at the end of a chunk; whitespace inside a chunk is collapsed
to single spaces.
"""

from __future__ import annotations

import re

MARKDOWN_CHARS = "*#`"
"""Characters removed from the stream: emphasis, headings and code marks."""

ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "approx"})
"""Words (lower case, without the dot) whose trailing ``.`` does not end a sentence.

Single letters (initials) and dotted forms (``e.g.``, ``i.e.``, ``U.S.``, ``a.m.``) are
recognised by shape. Splitting after an abbreviation gives wrong prosody, while missing a real
sentence end only merges two sentences into one chunk, so the list errs towards not splitting.
"""

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n")
_CLAUSE_END = re.compile(r"[,;:](?=\s)|—(?=[\s\S])|\s[-–](?=\s)")
_LAST_WORD = re.compile(r"(\S+)$")
_DOTTED_OR_INITIAL = re.compile(r"[a-z](?:\.[a-z])*")
_LINE_BULLET = re.compile(r"^[ \t]*[-•–][ \t]+", re.MULTILINE)
_TRAILING_DASH = re.compile(r"\s*[-–—]+$")
_MARKDOWN_TABLE = str.maketrans("", "", MARKDOWN_CHARS)


class SentenceChunker:
    """Cuts one streamed reply into TTS-ready chunks (see the module docstring).

    Args:
        min_chars: fewest characters a chunk must have to end at a sentence end; shorter
            sentences ("Sure.") are merged with the next one. Default 10 (chosen, not published:
            merges one-word sentences, keeps short ones like "Of course.").
        clause_min_chars: fewest characters the first chunk must have to end at a clause break.
            Default 20 (chosen, not published: about four words, roughly one second of speech).

        max_wait_ms: longest a piece of text waits for a boundary before it is spoken anyway
            (ms since its first character arrived). Default 1500 (chosen, not published: past
            ~1.5 s a pause "feels broken", README); None disables the time bound.
        max_chars: longest a chunk may grow before it is cut at its last space. Default 250
            (chosen: about 15 s of speech, keeps one TTS call bounded); None disables it.

    Raises:
        ValueError: if a minimum is negative or a bound is not positive.
    """

    def __init__(
        self,
        min_chars: int = 10,
        clause_min_chars: int = 20,
        *,
        max_wait_ms: float | None = 1500.0,
        max_chars: int | None = 250,
    ) -> None:
        if min_chars < 0 or clause_min_chars < 0:
            raise ValueError(
                f"chunk minimums must be >= 0 characters, got min_chars={min_chars}, "
                f"clause_min_chars={clause_min_chars}"
            )
        if max_wait_ms is not None and not max_wait_ms > 0:
            raise ValueError(f"max_wait_ms must be > 0 ms or None, got {max_wait_ms}")
        if max_chars is not None and max_chars < 1:
            raise ValueError(f"max_chars must be >= 1 or None, got {max_chars}")
        self.min_chars = min_chars
        self.clause_min_chars = clause_min_chars
        self.max_wait_ms = max_wait_ms
        self.max_chars = max_chars
        self._buffer = ""
        self._first = True
        self._since_ms: float | None = None

    def push(self, delta: str, now_ms: float | None = None) -> list[str]:
        """Add the next text delta of the reply.

        Args:
            delta: the next piece of the streamed reply, any length (may be empty).
            now_ms: session time the delta arrived (ms), for the ``max_wait_ms`` bound; None
                leaves the time bound out of this call.

        Returns:
            The chunks completed by this delta, in order (often none).
        """
        self._buffer += delta.translate(_MARKDOWN_TABLE)
        chunks: list[str] = []
        while (end := self._next_boundary()) is not None:
            self._take(end, chunks)
        if self._buffer.strip():
            if self._since_ms is None:
                self._since_ms = now_ms
        else:
            self._since_ms = None
        chunks += self._bounded(now_ms)
        return chunks

    def poll(self, now_ms: float) -> list[str]:
        """Apply the time bound with no new text: speak what has waited ``max_wait_ms``.

        Args:
            now_ms: session time now (ms).

        Returns:
            At most one chunk.
        """
        return self._bounded(now_ms)

    def _take(self, end: int, chunks: list[str]) -> None:
        chunk = _clean(self._buffer[:end])
        self._buffer = self._buffer[end:]
        if not self._buffer.strip():
            self._since_ms = None
        if chunk:
            chunks.append(chunk)
            self._first = False

    def _bounded(self, now_ms: float | None) -> list[str]:
        chunks: list[str] = []
        while self.max_chars is not None and len(self._buffer) >= self.max_chars:
            self._take(_cut_at_space(self._buffer, self.max_chars), chunks)
        waited = (
            self.max_wait_ms is not None
            and now_ms is not None
            and self._since_ms is not None
            and now_ms - self._since_ms >= self.max_wait_ms
        )
        if waited and self._buffer.strip():
            self._take(_cut_at_space(self._buffer, len(self._buffer)), chunks)
            if self._buffer.strip():
                self._since_ms = now_ms
        return chunks

    def flush(self) -> list[str]:
        """End the reply: return what remains as a last chunk and reset for the next reply.

        Returns:
            The remaining text as one chunk, or no chunk if only whitespace remains.
        """
        rest = _clean(self._buffer)
        self._buffer = ""
        self._first = True
        self._since_ms = None
        return [rest] if rest else []

    def _next_boundary(self) -> int | None:
        """End index in the buffer of the earliest complete chunk, or None."""
        candidates: list[int] = []
        for match in _SENTENCE_END.finditer(self._buffer):
            end = match.end()
            if match.group() == "\n":
                if _clean(self._buffer[:end]):
                    candidates.append(end)
                    break
            elif self._is_sentence_end(match) and len(_clean(self._buffer[:end])) >= self.min_chars:
                candidates.append(end)
                break
        if self._first:
            for match in _CLAUSE_END.finditer(self._buffer):
                end = match.end()
                if len(_clean(self._buffer[:end])) >= self.clause_min_chars:
                    candidates.append(end)
                    break
        return min(candidates) if candidates else None

    def _is_sentence_end(self, match: re.Match[str]) -> bool:
        if not match.group().startswith("."):
            return True
        word = _LAST_WORD.search(self._buffer[: match.start()])
        if word is None:
            return True
        stem = word.group(1).lstrip("\"'“‘([").lower()
        return stem not in ABBREVIATIONS and _DOTTED_OR_INITIAL.fullmatch(stem) is None


def _cut_at_space(text: str, limit: int) -> int:
    """End index for a forced cut within ``text[:limit]``: after its last whitespace, or at
    ``limit`` when it has none (one very long word)."""
    space = max(text.rfind(" ", 0, limit), text.rfind("\n", 0, limit))
    return space + 1 if space > 0 and text[:space].strip() else limit


def _clean(text: str) -> str:
    """Drop list bullets and a trailing dash; collapse whitespace to single spaces."""
    return _TRAILING_DASH.sub("", " ".join(_LINE_BULLET.sub("", text).split()))
