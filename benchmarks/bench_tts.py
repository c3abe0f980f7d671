"""Benchmark the espeak-ng synthesizer: time to first chunk and real-time factor.

Run: ``python benchmarks/bench_tts.py [--repeats 20] [--voice en-us] [--rate-wpm 175]``

Reported per text (medians over the repeats):

* ``ttfb_ms``: time from calling ``synthesize()`` to receiving its first chunk (TTS time to
  first byte; the engine's contribution to the ``tts_first_audio`` term of TTFAT).
* ``ttfb/audio``: ``ttfb_ms`` over the duration of the whole utterance's audio: the share of the
  sentence the listener would wait for with a non-streaming TTS is 1 / RTF; with streaming it is
  this ratio.
* ``ttfb/synth``: ``ttfb_ms`` over the time to synthesize the whole text (< 1 means streaming
  pays off; 1 would mean the first chunk waits for the last).
* ``rtf``: synthesis time over audio duration (real-time factor; < 1 is faster than real time).
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass

from earshot.audio.frames import SAMPLE_RATE_HZ
from earshot.clock import SystemClock
from earshot.tts.espeak import EspeakSynthesizer

TEXTS = {
    "short": "Sure.",
    "sentence": "Hello there. How can I help you today?",
    "paragraph": " ".join(
        [
            "Your order shipped this morning and should arrive on Thursday.",
            "If it does not, reply to this message and we will send a replacement.",
            "Is there anything else I can help you with today?",
        ]
        * 4
    ),
}


@dataclass(frozen=True, slots=True)
class Run:
    ttfb_ms: float
    synth_ms: float
    audio_ms: float
    num_chunks: int


def measure(tts: EspeakSynthesizer, text: str, clock: SystemClock) -> Run:
    """Synthesize ``text`` once, timing the first chunk and the whole call."""
    started_ms = clock.now_ms()
    ttfb_ms = None
    num_samples = 0
    num_chunks = 0
    for chunk in tts.synthesize(text):
        if ttfb_ms is None:
            ttfb_ms = clock.now_ms() - started_ms
        num_samples += chunk.audio.size
        num_chunks += 1
    synth_ms = clock.now_ms() - started_ms
    assert ttfb_ms is not None, "no audio"
    return Run(ttfb_ms, synth_ms, num_samples * 1000.0 / SAMPLE_RATE_HZ, num_chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--voice", default="en-us")
    parser.add_argument("--rate-wpm", type=int, default=175)
    args = parser.parse_args()

    tts = EspeakSynthesizer(voice=args.voice, rate_wpm=args.rate_wpm)
    clock = SystemClock()
    measure(tts, "Warm up.", clock)  # first call loads the voice data
    header = (
        f"{'text':<10} {'audio_s':>8} {'chunks':>6} {'ttfb_ms':>8} {'synth_ms':>9} "
        f"{'ttfb/audio':>10} {'ttfb/synth':>10} {'rtf':>7}"
    )
    print(f"espeak-ng, voice {args.voice}, {args.rate_wpm} wpm, medians of {args.repeats} runs")
    print(header)
    for label, text in TEXTS.items():
        runs = [measure(tts, text, clock) for _ in range(args.repeats)]
        ttfb = statistics.median(r.ttfb_ms for r in runs)
        synth = statistics.median(r.synth_ms for r in runs)
        audio = statistics.median(r.audio_ms for r in runs)
        chunks = statistics.median(r.num_chunks for r in runs)
        print(
            f"{label:<10} {audio / 1000:>8.2f} {chunks:>6.0f} {ttfb:>8.2f} {synth:>9.2f} "
            f"{ttfb / audio:>10.4f} {ttfb / synth:>10.3f} {synth / audio:>7.4f}"
        )


if __name__ == "__main__":
    main()
