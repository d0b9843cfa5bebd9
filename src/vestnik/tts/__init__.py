"""TTS engines behind one call: every engine returns a `Speech` (22,050 Hz audio + timings)."""

from __future__ import annotations

from vestnik.errors import VestnikError
from vestnik.tts.speech import Speech

ENGINES = ("espeak", "neural")


def synthesize(text: str, tts_settings: dict, *, job: str | None = None) -> Speech:
    """Speak `text` with the engine named in `tts_settings["engine"]`."""
    engine = tts_settings["engine"]
    try:
        if engine == "espeak":
            from vestnik.tts import espeak

            return espeak.synthesize(text, **tts_settings.get("espeak", {}))
        if engine == "neural":
            from vestnik.tts import neural

            return neural.synthesize(text, **tts_settings.get("neural", {}))
    except VestnikError as exc:
        if exc.job is None and job is not None:
            raise VestnikError(str(exc), job=job) from exc
        raise
    raise VestnikError(f"unknown TTS engine '{engine}' (known: {', '.join(ENGINES)})", job=job)
