"""How much echo an echo canceller removes.

Echo return loss enhancement (ERLE), ITU-T G.168 (Digital network echo cancellers), clause 3:
the attenuation of the echo signal as it passes through the send path of an echo canceller.
Measured on a near end that holds only echo (no near-end talker, no noise):

    ERLE_dB = 10 · log10( Σ d[n]² / Σ e[n]² )

where d is the echo at the microphone (the canceller's input) and e the canceller's output
(the residual echo), both summed over the same samples after a convergence skip. G.168's ERLE
excludes non-linear processing; WebRTC AEC3's output includes its residual-echo suppressor, so
the figure measured on it is the total echo attenuation the rest of the pipeline sees.
"""

from __future__ import annotations

import math

import numpy as np

from earshot.audio.frames import SAMPLE_RATE_HZ, Pcm16, ms_to_samples


def erle_db(
    mic_echo_only: Pcm16,
    aec_out: Pcm16,
    skip_ms: float = 1000.0,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    output_delay_samples: int = 0,
) -> float:
    """ERLE in dB of a canceller run on an echo-only microphone signal.

    Args:
        mic_echo_only: int16, shape ``(num_samples,)``: the canceller's near-end input, echo only.
        aec_out: int16, same shape: the canceller's output for that input.
        skip_ms: Leading duration excluded while the canceller converges, in ms.
        sample_rate_hz: Sample rate of both signals, in Hz.
        output_delay_samples: How far ``aec_out`` lags ``mic_echo_only`` (e.g. the canceller's
            ``output_delay_samples``); input sample n is compared with output sample n + delay.

    Returns:
        ERLE in dB; ``math.inf`` when the residual after the skip is exactly zero.

    Raises:
        ValueError: the lengths differ, the skip leaves no samples, or the microphone signal
            holds no echo after the skip.
    """
    if len(mic_echo_only) != len(aec_out):
        raise ValueError(
            f"mic_echo_only has {len(mic_echo_only)} samples but aec_out has {len(aec_out)}; "
            "pass the canceller's output for exactly that input"
        )
    if output_delay_samples < 0:
        raise ValueError(f"output_delay_samples={output_delay_samples} must be ≥ 0")
    skip = ms_to_samples(skip_ms, sample_rate_hz)
    stop = len(mic_echo_only) - output_delay_samples
    if skip >= stop:
        raise ValueError(
            f"skip_ms={skip_ms} (+ {output_delay_samples} samples of output delay) leaves no "
            f"samples of a {len(mic_echo_only)}-sample signal; pass a longer recording or a "
            "shorter skip"
        )
    echo = mic_echo_only[skip:stop].astype(np.float64)
    residual = aec_out[skip + output_delay_samples :].astype(np.float64)
    echo_energy = float(np.dot(echo, echo))
    residual_energy = float(np.dot(residual, residual))
    if echo_energy == 0.0:
        raise ValueError(
            "mic_echo_only is silent after the skip, so there is no echo to cancel; play "
            "far-end audio through the echo path or shorten skip_ms"
        )
    if residual_energy == 0.0:
        return math.inf
    return 10.0 * math.log10(echo_energy / residual_energy)
