"""TTS engines behind one call: every engine returns a `Speech` (22,050 Hz audio + timings)."""

from __future__ import annotations

from vestnik import engines
from vestnik.config import engine_settings
from vestnik.errors import VestnikError
from vestnik.tts.speech import Speech


def synthesize(
    text: str, tts_settings: dict, *, job: str | None = None, gpu: dict | None = None
) -> Speech:
    """Speak `text` with the engine named in `tts_settings["engine"]` (see vestnik.engines).

    An engine that takes a device slot with `device: auto` holds a slot of the `gpu:` block
    (vestnik.slots) while it speaks, so it lands on the device the slot names.
    """
    spec, block = engines.chosen({"tts": tts_settings}, "tts", job)
    block = engine_settings("tts", spec.name, block, job)
    speak = spec.load()
    try:
        if spec.device_slot(block) and block.get("device") == "auto":
            from vestnik.slots import device_slot

            with device_slot(gpu, job=job) as device:
                return speak(text, **{**block, "device": device})
        return speak(text, **block)
    except VestnikError as exc:
        if exc.job is None and job is not None:
            raise VestnikError(str(exc), job=job) from exc
        raise
