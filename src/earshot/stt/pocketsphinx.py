"""Streaming STT with CMU PocketSphinx 5 (the wheel carries its US-English model).

Weak by modern standards but fully offline and light: on the bundled recordings its word error
rate ranges from under 0.15 (clean read speech) to near 1.0 (far-field meeting crosstalk). Its
live cepstral-mean normalisation starts from fixed values and adapts as it hears audio, so the
first utterance of a session is usually the worst; reuse one recognizer per audio stream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from earshot.audio.frames import Pcm16
from earshot.stt.base import Transcript, WordSegment
from earshot.vad import check_pcm16

DecoderOption = str | int | float | bool | None

_VARIANT = re.compile(r"\(\d+\)$")
"""Pronunciation-variant suffix in segment names, e.g. ``read(2)``."""


def _is_filler(word: str) -> bool:
    """True for non-word tokens: ``<s>``, ``</s>``, ``<sil>``, ``[NOISE]``, ``++UM++``..."""
    return word.startswith(("<", "[", "+")) or not word


class PocketsphinxRecognizer:
    """`StreamingRecognizer` over ``pocketsphinx.Decoder`` with the bundled en-US model.

    The decoder (~0.4 s to load) is built on first use, or ahead of time with `load()`.
    Not thread-safe: calls must come one at a time (the `StreamingRecognizer` contract).

    `finish()` is on the TTFAT critical path (the STT-finalisation term): PocketSphinx re-decodes
    the whole utterance there with its second, flat-lexicon pass. On the bundled recordings (2-11 s)
    that took ~0.1-1.5 s of CPU; with ``second_pass=False`` ~20-450 ms, at a similar word error
    rate on that small set (see ``benchmarks/bench_vad_stt.py``).

    Args:
        second_pass: run PocketSphinx's flat-lexicon second pass (``fwdflat``) in `finish()`.
        decoder_options: extra ``pocketsphinx.Config`` parameters, e.g. ``{"lm": path,
            "dict": path}`` for a custom language model and dictionary (see PocketSphinx's
            ``config_params``); they override ``second_pass``. Logging is silenced unless
            ``loglevel`` is given.

    Raises:
        ImportError: the ``pocketsphinx`` wheel is not installed.
    """

    name = "pocketsphinx"
    model_name = "en-us (pocketsphinx wheel)"

    def __init__(
        self,
        *,
        second_pass: bool = True,
        decoder_options: Mapping[str, DecoderOption] | None = None,
    ) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:
            raise ImportError(
                "the PocketSphinx STT backend needs the pocketsphinx wheel: "
                "pip install 'pocketsphinx>=5'"
            ) from exc
        self._pocketsphinx = pocketsphinx
        self._options: dict[str, DecoderOption] = {
            "loglevel": "FATAL",
            "fwdflat": second_pass,
            **(decoder_options or {}),
        }
        self._decoder: Any = None
        self._frames_per_s = 100.0
        self._in_utterance = False

    def load(self) -> None:
        """Build the decoder now (loads the acoustic model, dictionary and LM) if not yet built.

        Raises:
            ValueError: PocketSphinx rejected ``decoder_options``.
            RuntimeError: PocketSphinx could not initialise with them (e.g. a missing file).
        """
        if self._decoder is not None:
            return
        decoder = self._pocketsphinx.Decoder(**self._options)
        self._frames_per_s = float(decoder.config["frate"])
        self._decoder = decoder

    def start(self) -> None:
        """Begin a new utterance; an utterance still open is abandoned."""
        self.load()
        if self._in_utterance:
            self._decoder.end_utt()
        self._decoder.start_utt()
        self._in_utterance = True

    def push_audio(self, pcm: Pcm16) -> str:
        """Decode ``pcm`` and return the current partial hypothesis.

        Args:
            pcm: int16, shape ``(num_samples,)``, 16 kHz mono; any length (empty is a no-op).

        Returns:
            The best hypothesis of the utterance so far, lower-case words separated by spaces
            ('' if none yet).

        Raises:
            ValueError: ``pcm`` is not a 1-D int16 numpy array.
            RuntimeError: no utterance is open (call `start()` first).
        """
        check_pcm16(pcm, what="audio")
        if not self._in_utterance:
            raise RuntimeError("push_audio() outside an utterance; call start() first")
        if pcm.size:
            self._decoder.process_raw(_as_bytes(pcm), False, False)
        hyp = self._decoder.hyp()
        return str(hyp.hypstr) if hyp is not None else ""

    def finish(self) -> Transcript:
        """End the utterance; return its final text and word segmentation.

        Word times are ms from the first sample pushed since `start()`. Returns an empty
        `Transcript` if no utterance is open (never started, or already finished).
        """
        if not self._in_utterance:
            return Transcript(text="")
        self._decoder.end_utt()
        self._in_utterance = False
        return self._result()

    def transcribe(self, pcm: Pcm16) -> Transcript:
        """Recognise a whole recording at once (for offline evaluation).

        Unlike streaming, the decoder sees the whole utterance before normalising it (batch
        cepstral-mean normalisation), which is usually more accurate than `push_audio`.

        Args:
            pcm: int16, shape ``(num_samples,)``, 16 kHz mono.

        Raises:
            ValueError: ``pcm`` is not a 1-D int16 numpy array.
            RuntimeError: a streaming utterance is open (call `finish()` first).
        """
        check_pcm16(pcm, what="audio")
        if self._in_utterance:
            raise RuntimeError("transcribe() during a streaming utterance; call finish() first")
        self.load()
        self._decoder.start_utt()
        if pcm.size:
            self._decoder.process_raw(_as_bytes(pcm), False, True)
        self._decoder.end_utt()
        return self._result()

    def _result(self) -> Transcript:
        hyp = self._decoder.hyp()
        text = str(hyp.hypstr) if hyp is not None else ""
        ms_per_frame = 1000.0 / self._frames_per_s
        words = tuple(
            WordSegment(
                text=_VARIANT.sub("", seg.word),
                start_ms=seg.start_frame * ms_per_frame,
                end_ms=(seg.end_frame + 1) * ms_per_frame,  # end_frame is inclusive
            )
            for seg in self._decoder.seg() or ()
            if not _is_filler(seg.word)
        )
        return Transcript(text=text, words=words)


def _as_bytes(pcm: Pcm16) -> Any:
    """The bytes view ``process_raw`` accepts (unsigned char memory), without a copy if possible."""
    return np.ascontiguousarray(pcm).view(np.uint8)
