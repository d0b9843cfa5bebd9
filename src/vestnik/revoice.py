"""Re-voicing: a recording and its transcript spoken again by the neural voice, same timing.

A job with `audio` and a transcript (`text` or `text_file`) and `tts.engine: neural` is
re-voiced in three steps (docs/revoice.md):

1. `plan_revoicing` (one job, serial and cheap): the recording is resampled and its pauses
   found; it is cut in pauses into pieces of about `revoice.piece_seconds`; the transcript is
   aligned to the whole recording by a banded alignment (vestnik.acoustic.align, frames x band
   rather than frames x tokens), which says which words each piece holds and refuses a
   transcript that does not fit, naming the stretch. Empty transcripts and recordings without
   speech are refused before the model is loaded.
2. `revoice_piece` (one Snakemake job per piece, in parallel): the exact alignment of the
   piece's words to its frames gives every phoneme its frames in the recording; the acoustic
   model speaks them with those durations (teacher-forced) and the vocoder makes the audio.
   The recording's pauses stay silent, so the piece starts and ends in silence.
3. `join_pieces`: the pieces, cut on frame edges in silence, are laid end to end (no seam
   to hide) into speech.wav, which has exactly the recording's samples; speech.json carries
   the aligned sentence and phoneme timings.

This module imports torch only inside the steps, so the workflow can ask it questions while it
parses.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from vestnik.config import block_settings, engine_settings
from vestnik.errors import VestnikError
from vestnik.io import write_json

log = logging.getLogger("vestnik.revoice")
T = TypeVar("T")

SAMPLE_RATE = 22050
HOP = 256
"""The mel front end's hop (vestnik.mel): pieces are cut on its frame edges."""
FRAME_SECONDS = HOP / SAMPLE_RATE
PEAK = 0.95
"""Peak level the recording is brought to before its mel is taken (as the corpus was)."""
FLOOR_DB = -60.0
"""Frames quieter than this (dBFS) are silence whatever the recording's level."""
LOUD_PERCENTILE = 95
"""The recording's loud level: this percentile of its frame levels above the floor."""
MIN_SPEECH_SECONDS = 0.2
"""A recording with less speech than this is refused as having none."""
SPEECH_MARGIN = 4
"""Frames of silence kept on each side of a piece's speech when it is aligned (46 ms; the
corpus the model learnt from kept 50 ms)."""
GATE_MARGIN = 2
"""Frames at each end of a pause that the new speech may still sound in (its releases)."""
RAMP = 128
"""Samples over which a silenced pause fades out and in."""


# --- inputs ----------------------------------------------------------------------------------

def is_revoicing(entry: dict) -> bool:
    """Whether a job entry is a re-voicing job: a recording with a transcript."""
    return "audio" in entry and ("text" in entry or "text_file" in entry)


def revoice_settings(block: dict | None, job: str | None = None) -> dict:
    """The `revoice` settings block, checked, defaults filled in (config/schema.yaml)."""
    return block_settings("revoice", block, job)


def read_transcript(kind: str, value: str, job: str) -> str:
    """The transcript's text, refused when it is empty or has nothing to say."""
    from vestnik.steps import read_text_input
    from vestnik.text.normalize import has_speakable

    text = read_text_input(kind, value, job)
    path = value if kind == "text_file" else None
    if not text.strip():
        raise VestnikError("the transcript of the recording is empty", job=job, path=path)
    if not has_speakable(text):
        raise VestnikError("the transcript has nothing speakable (no letters or numbers)",
                           job=job, path=path)
    return text


@dataclass
class Transcript:
    """The transcript as the model's symbols, sentence by sentence.

    `symbols` is the whole transcript's token strings (no blanks); sentence k owns symbols
    [starts[k], starts[k + 1]); a sentence without closing punctuation ends in a word gap so
    its last word never runs into the next sentence's first.
    """

    sentences: list[str]
    symbols: list[str]
    starts: list[int]

    def sentence_of(self, symbol: int) -> int:
        return int(np.searchsorted(self.starts, symbol, side="right")) - 1

    def span(self, k: int) -> tuple[int, int]:
        end = self.starts[k + 1] if k + 1 < len(self.starts) else len(self.symbols)
        return self.starts[k], end

    def words_near(self, first: int, last: int, limit: int = 12) -> str:
        """The transcript's words that symbols [first, last] stand for (by their place in
        their sentences: eSpeak joins some words, so symbols do not map to words one to one)."""
        words: list[str] = []
        for k in range(self.sentence_of(first), self.sentence_of(last) + 1):
            lo, hi = self.span(k)
            text = self.sentences[k].split()
            a = max(first, lo) - lo
            b = min(last, hi - 1) - lo
            n = max(1, hi - lo)
            words += text[int(a * len(text) / n): int(b * len(text) / n) + 1]
        if len(words) > limit:
            words = words[: limit // 2] + ["…"] + words[-limit // 2:]
        return " ".join(words)


def transcript_tokens(text: str, max_chars: int = 300) -> Transcript:
    """Normalise and tokenise a transcript (eSpeak NG phonemes), one sentence at a time."""
    from vestnik.acoustic import symbols
    from vestnik.text.normalize import normalize, split_sentences, strip_stress

    sentences, tokens, starts = [], [], []
    unknown: set[str] = set()
    for sentence in split_sentences(normalize(text, stress=True), max_chars):
        found = symbols.text_tokens(sentence)
        unknown |= found.unknown
        if not any(symbols.is_phoneme(s) for s in found.symbols):
            continue
        sentences.append(strip_stress(sentence))
        starts.append(len(tokens))
        tokens += found.symbols
        if not symbols.is_pause(tokens[-1]):
            tokens.append(symbols.SPACE)
    symbols.warn_unknown(unknown, "the transcript")
    return Transcript(sentences, tokens, starts)


# --- pauses and pieces -------------------------------------------------------------------------

def frame_levels(samples: np.ndarray) -> np.ndarray:
    """dBFS RMS level of each HOP-sample frame (the last one zero-padded)."""
    frames = -(-len(samples) // HOP)
    padded = np.zeros(frames * HOP, np.float32)
    padded[: len(samples)] = samples
    blocks = padded.reshape(frames, HOP)
    power = np.einsum("ij,ij->i", blocks, blocks, dtype=np.float64) / HOP
    return 10 * np.log10(np.maximum(power, 1e-12))


def silence_threshold(levels: np.ndarray, silence_db: float) -> float:
    """Frame level (dBFS) at and below which a frame is silence: `silence_db` below the
    recording's loud frames, never below FLOOR_DB."""
    loud = levels[levels > FLOOR_DB]
    if loud.size == 0:
        return FLOOR_DB
    return max(FLOOR_DB, float(np.percentile(loud, LOUD_PERCENTILE)) - silence_db)


def silent_runs(speech: np.ndarray, min_frames: int) -> list[tuple[int, int]]:
    """[start, end) frame runs without speech that last at least `min_frames`."""
    edges = np.diff(np.concatenate([[1], speech.astype(np.int8), [1]]))
    starts, ends = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True) if b - a >= min_frames]


def cut_points(speech: np.ndarray, piece_frames: int, min_pause_frames: int) -> list[int]:
    """Frames where the recording is cut into pieces: the middle of the longest pause near
    each piece's ideal end (half a piece to one and a half past its start).

    Only pauses with speech on both sides count; where none is near, the next one is used, and
    without any the recording stays one piece.
    """
    n = len(speech)
    runs = [r for r in silent_runs(speech, min_pause_frames) if r[0] > 0 and r[1] < n]
    cuts: list[int] = []
    position = 0
    while n - position > 1.5 * piece_frames:
        lo, hi = position + piece_frames // 2, position + 3 * piece_frames // 2
        near = [r for r in runs if lo <= (r[0] + r[1]) // 2 <= hi]
        if not near:
            near = [r for r in runs if (r[0] + r[1]) // 2 > hi][:1]
            if not near:
                break
        start, end = max(near, key=lambda r: (r[1] - r[0], -abs((r[0] + r[1]) // 2
                                                                - position - piece_frames)))
        cut = (start + end) // 2
        if n - cut < piece_frames // 4:
            break
        cuts.append(cut)
        position = cut
    return cuts


def symbol_frames(token: np.ndarray, owner: np.ndarray, n_symbols: int) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    """First frame and end frame (exclusive) of every symbol along a path of model tokens
    (`owner`: each model token's symbol, -1 for a blank); a monotonic path gives every token,
    so every symbol, at least one frame."""
    symbol = owner[token]
    own = symbol >= 0
    frames = np.arange(len(token))
    first = np.full(n_symbols, len(token), dtype=np.int64)
    end = np.zeros(n_symbols, dtype=np.int64)
    np.minimum.at(first, symbol[own], frames[own])
    np.maximum.at(end, symbol[own], frames[own] + 1)
    return first, end


def word_boundaries(symbol_list: Sequence[str]) -> np.ndarray:
    """Symbol indices a piece may start at: a word's first sound after a word gap or pause."""
    from vestnik.acoustic import symbols

    return np.array([b for b in range(1, len(symbol_list))
                     if symbols.is_phoneme(symbol_list[b])
                     and (symbol_list[b - 1] == symbols.SPACE
                          or symbols.is_pause(symbol_list[b - 1]))], dtype=np.int64)


def assign_symbols(cuts: Sequence[int], symbol_list: Sequence[str], first: np.ndarray,
                   end: np.ndarray) -> list[tuple[int, int]]:
    """(cut frame, first symbol of the piece after it) for each cut that keeps words whole.

    Each cut takes the word boundary whose gap (the end of the sound before it to the start of
    the sound after it, on the alignment) is nearest to it; a cut whose boundary an earlier
    cut took, or whose piece would get no sound of its own, is dropped.
    """
    from vestnik.acoustic import symbols

    bounds = word_boundaries(symbol_list)
    if bounds.size == 0:
        return []
    phoneme = np.array([symbols.is_phoneme(s) for s in symbol_list])
    last_sound = np.maximum.accumulate(np.where(phoneme, np.arange(len(symbol_list)), -1))
    gap_mid = (end[last_sound[bounds - 1]] + first[bounds]) / 2
    kept: list[tuple[int, int]] = []
    previous = 0
    for cut in cuts:
        choice = int(bounds[int(np.argmin(np.abs(gap_mid - cut)))])
        if choice <= previous or not phoneme[previous:choice].any():
            continue
        kept.append((int(cut), int(choice)))
        previous = int(choice)
    if kept and not phoneme[kept[-1][1]:].any():
        kept.pop()
    return kept


# --- mismatch ----------------------------------------------------------------------------------

def clock(seconds: float) -> str:
    """m:ss.s of a time in the recording."""
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def check_fit(job: str, path_fit: np.ndarray, speech: np.ndarray, settings: dict,
              offset_frames: int, words_at, what: str = "the transcript") -> dict:
    """Refuse an alignment whose worst stretch of speech fits worse than `min_match`.

    `words_at(first_frame, end_frame)` names the transcript's words the alignment put in a
    stretch; the message gives the stretch's time in the recording and those words. Returns
    {"worst": fit, "at": seconds} of the worst stretch.
    """
    from vestnik.acoustic.align import stretch_fits

    window = max(1, round(settings["match_window"] / FRAME_SECONDS))
    fits, starts = stretch_fits(path_fit, speech, window)
    if fits.size == 0:
        return {"worst": None, "at": None}
    k = int(np.argmin(fits))
    speech_frames = np.flatnonzero(speech)
    first = int(starts[k])
    stop_index = min(len(speech_frames) - 1,
                     int(np.searchsorted(speech_frames, first)) + window - 1)
    stop = int(speech_frames[stop_index]) + 1
    worst = {"worst": round(float(fits[k]), 3),
             "at": round((offset_frames + first) * FRAME_SECONDS, 3)}
    if fits[k] < settings["min_match"]:
        begin, finish = offset_frames + first, offset_frames + stop
        raise VestnikError(
            f"{what} does not match the recording at {clock(begin * FRAME_SECONDS)}-"
            f"{clock(finish * FRAME_SECONDS)} (words aligned there: «{words_at(first, stop)}»): "
            f"the alignment fits it at {fits[k]:.1f} per frame, below revoice.min_match "
            f"({settings['min_match']}); correct the transcript there (matching recordings "
            "stay above it, docs/revoice.md)",
            job=job,
        )
    return worst


# --- step 1: the plan ---------------------------------------------------------------------------

def prepare_recording(samples: np.ndarray, job: str, path: str | os.PathLike | None = None,
                      silence_db: float = 35.0) -> tuple[np.ndarray, np.ndarray, float]:
    """(samples at PEAK, frame levels, silence threshold dBFS); refuses silence and recordings
    with less than MIN_SPEECH_SECONDS of speech, before any model is loaded."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak <= 1e-4:
        raise VestnikError("the recording is silent: nothing to re-voice", job=job, path=path)
    samples = (samples * (PEAK / peak)).astype(np.float32)
    levels = frame_levels(samples)
    threshold = silence_threshold(levels, silence_db)
    speech = levels > threshold
    if speech.sum() * FRAME_SECONDS < MIN_SPEECH_SECONDS or speech.mean() > 0.995:
        raise VestnikError(
            "the recording has no speech to re-voice (no stretch stands out above its quiet "
            f"level: {speech.sum() * FRAME_SECONDS:.2f} s louder than {threshold:.0f} dBFS)",
            job=job, path=path)
    return samples, levels, threshold


@contextmanager
def engine_device(neural: dict, gpu: dict | None, job: str | None) -> Iterator[str]:
    """The device the neural voice runs on: a device slot of `gpu:` for `device: auto`."""
    if neural["device"] == "auto":
        from vestnik.slots import device_slot

        with device_slot(gpu, job=job) as device:
            yield device
    else:
        yield neural["device"]


@dataclass
class RecordingAlignment:
    """The banded alignment of a whole transcript to a whole recording.

    `path` gives every frame its model token and fit, `owner` every model token its symbol
    (-1 for a blank), `first`/`end` every symbol its frames, `speech` which frames sound.
    """

    path: object
    owner: np.ndarray
    first: np.ndarray
    end: np.ndarray
    speech: np.ndarray

    def words_at(self, script: Transcript, lo: int, hi: int) -> str:
        """The transcript's words the alignment puts in frames [lo, hi)."""
        owned = self.owner[self.path.token[lo:hi]]
        owned = owned[owned >= 0]
        if owned.size == 0:
            return ""
        return script.words_near(int(owned.min()), int(owned.max()))


def encode_sentences(model, names: Sequence[str], starts: Sequence[int]) -> tuple[list, np.ndarray,
                                                                            np.ndarray]:
    """The symbols `names` encoded one sentence at a time (sentences start at `starts`, 0
    first), as the voice speaks them and as the model learnt from single utterances: a long
    span encoded at once drifts from what the model knows. Returns the per-sentence encodings
    and, over all of them, the means and each model token's symbol index (-1: a blank)."""
    from vestnik.acoustic.align import encode
    from vestnik.acoustic.symbols import SYMBOL_ID

    edges = [*starts, len(names)]
    parts, mus, owners = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if hi <= lo:
            continue
        encoded = encode(model, [SYMBOL_ID[s] for s in names[lo:hi]])
        parts.append(encoded)
        mus.append(encoded.mu)
        owners.append(np.where(encoded.symbol >= 0, encoded.symbol + lo, -1))
    return parts, np.concatenate(mus), np.concatenate(owners)


def align_recording(job: str, model, samples: np.ndarray, script: Transcript, speech: np.ndarray,
                    band: int, encoded: tuple[np.ndarray, np.ndarray] | None = None,
                    mel: np.ndarray | None = None) -> RecordingAlignment:
    """Align the transcript to the whole recording (`samples` at PEAK, a whole number of
    frames long) within a band of `band` tokens; the transcript is encoded sentence by sentence.
    `encoded` (means and owners of `encode_sentences`) and `mel` (`log_mel` of `samples`) are
    given when the caller computed them alongside other work. Refuses a transcript too long for
    the recording, or one the band never carries to its end.
    """
    from vestnik.acoustic.align import banded_alignment, normalised_frames
    from vestnik.mel import log_mel

    mu, owner = encoded if encoded is not None else encode_sentences(model, script.symbols,
                                                                     script.starts)[1:]
    n_frames = len(samples) // HOP
    if mu.shape[0] > n_frames:
        raise VestnikError(
            f"the transcript is far too long for the recording ({len(script.symbols)} sounds "
            f"and gaps for {n_frames * FRAME_SECONDS:.1f} s): it does not match it", job=job)
    frames = normalised_frames(model, log_mel(samples) if mel is None else mel)[:n_frames]
    path = banded_alignment(mu, frames, band)
    if path is None:
        raise VestnikError(
            "the transcript does not match the recording: aligning it to the recording never "
            "reached its end (more text than speech, or other words; revoice.band widens the "
            "search)", job=job)
    first, end = symbol_frames(path.token, owner, len(script.symbols))
    return RecordingAlignment(path, owner, first, end, speech[:n_frames])


class _Inline:
    """The executor of a step granted one thread: each task runs when it is submitted."""

    def submit(self, task: Callable[..., T], *args) -> Future[T]:
        done: Future[T] = Future()
        try:
            done.set_result(task(*args))
        except BaseException as exc:  # raised where the result is asked for, as in a thread
            done.set_exception(exc)
        return done

    def shutdown(self, wait: bool = True) -> None:
        """Nothing runs in the background."""


def side_executor(threads: int) -> ThreadPoolExecutor | _Inline:
    """Where a step runs its side task: a second thread when it was granted two or more
    (torch and numpy release the interpreter lock in their heavy calls), else inline."""
    return ThreadPoolExecutor(1, thread_name_prefix="vestnik-side") if threads > 1 else _Inline()


def _load_and_encode(acoustic: str, script: Transcript) -> tuple[object, np.ndarray, np.ndarray]:
    """The acoustic model on the CPU and the transcript's means and owners (encode_sentences)."""
    import torch

    from vestnik.acoustic.checkpoint import load_acoustic

    torch.set_num_threads(1)
    model, _ = load_acoustic(acoustic, "cpu")
    _, mu, owner = encode_sentences(model, script.symbols, script.starts)
    return model, mu, owner


def plan_revoicing(job: str, recording: str | os.PathLike, transcript: str, tts: dict,
                   settings: dict, out_plan: str | os.PathLike,
                   out_recording: str | os.PathLike, threads: int = 1) -> dict:
    """Cut the recording into pieces in pauses and give each piece its words (step 1).

    `tts` is the job's tts block (engine neural), `settings` its revoice block; with `threads`
    of 2 or more, torch's import and the transcript's encoding run in a second thread beside
    the recording's reading, checks and mel (the same work as in one thread). Writes the plan
    (JSON: pieces with their sample spans and symbol spans, the transcript's symbols and
    sentences, the silence threshold, the alignment's worst fit) and the recording at 22,050 Hz.
    """
    from vestnik import media
    from vestnik.tts.neural import model_paths

    settings = revoice_settings(settings, job)
    neural = engine_settings("tts", "neural", tts.get("neural"), job)
    side = side_executor(threads)
    try:
        side.submit(importlib.import_module, "torch")  # a second of the serial step
        script = transcript_tokens(transcript, neural["max_chars"])
        if not script.symbols:
            raise VestnikError("the transcript has no sounds the voice can say", job=job)
        try:
            samples = media.read_audio(recording, SAMPLE_RATE)
        except VestnikError as exc:
            raise VestnikError(str(exc), job=job) from exc
        samples, levels, threshold = prepare_recording(samples, job, recording,
                                                       settings["silence_db"])
        speech = levels > threshold
        n_frames = len(levels)
        padded = np.zeros(n_frames * HOP, np.float32)
        padded[: len(samples)] = samples
        cuts = cut_points(speech, round(settings["piece_seconds"] / FRAME_SECONDS),
                          max(1, round(settings["min_pause"] / FRAME_SECONDS)))
        # the model only once the recording has passed its checks; its encoding alongside
        # the recording's mel
        encoding = side.submit(_load_and_encode, model_paths(neural)[0], script)
        from vestnik.mel import log_mel

        mel = log_mel(padded)
        model, mu, owner = encoding.result()
    finally:
        side.shutdown(wait=True)
    aligned = align_recording(job, model, padded, script, speech, settings["band"],
                              encoded=(mu, owner), mel=mel)
    fit = check_fit(job, aligned.path.fit, speech, settings, 0,
                    lambda lo, hi: aligned.words_at(script, lo, hi))
    bounds = assign_symbols(cuts, script.symbols, aligned.first, aligned.end)
    frame_edges = [0] + [c for c, _ in bounds] + [n_frames]
    symbol_edges = [0] + [b for _, b in bounds] + [len(script.symbols)]
    pieces = []
    for i in range(len(frame_edges) - 1):
        pieces.append({
            "piece": i,
            "start": frame_edges[i] * HOP,
            "end": min(frame_edges[i + 1] * HOP, len(samples)),
            "first_symbol": symbol_edges[i],
            "end_symbol": symbol_edges[i + 1],
        })
    media.write_wav(out_recording, samples, SAMPLE_RATE)
    plan = {
        "job": job,
        "sample_rate": SAMPLE_RATE,
        "samples": len(samples),
        "silence_dbfs": round(threshold, 3),
        "symbols": script.symbols,
        "sentences": [{"text": s, "first_symbol": script.starts[k]}
                      for k, s in enumerate(script.sentences)],
        "fit": fit,
        "pieces": pieces,
    }
    write_json(out_plan, plan)
    log.info("job %s: %.1f s of recording in %d piece(s), %d sentences; worst fit %s",
             job, len(samples) / SAMPLE_RATE, len(pieces), len(script.sentences), fit)
    return plan


def read_plan(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def piece_count(plan_path: str | os.PathLike) -> int:
    """Pieces in a written plan (the workflow's per-piece jobs)."""
    return len(read_plan(plan_path)["pieces"])


# --- step 2: one piece --------------------------------------------------------------------------

def speech_span(speech: np.ndarray) -> tuple[int, int]:
    """[first, end) frames of a piece's speech with SPEECH_MARGIN of silence each side."""
    where = np.flatnonzero(speech)
    if where.size == 0:
        return 0, len(speech)
    return max(0, int(where[0]) - SPEECH_MARGIN), min(len(speech), int(where[-1]) + 1
                                                      + SPEECH_MARGIN)


def pause_gain(speech: np.ndarray, min_frames: int, n_samples: int) -> np.ndarray:
    """Per-sample gain that silences the recording's pauses of at least `min_frames`
    (GATE_MARGIN frames in from each end, fading over RAMP samples) and keeps the rest."""
    gain = np.ones(n_samples, np.float32)
    ramp = np.linspace(1.0, 0.0, RAMP, dtype=np.float32)
    for start, end in silent_runs(speech, min_frames):
        a = start * HOP + (GATE_MARGIN * HOP if start > 0 else 0)
        b = min(n_samples, end * HOP - (GATE_MARGIN * HOP if end < len(speech) else 0))
        if b - a <= 2 * RAMP:
            continue
        gain[a:b] = 0.0
        if start > 0:
            gain[a: a + RAMP] = ramp
        if end < len(speech):
            gain[b - RAMP: b] = ramp[::-1]
    return gain


def revoice_piece(job: str, plan_path: str | os.PathLike, recording: str | os.PathLike,
                  index: int, tts: dict, settings: dict, out_wav: str | os.PathLike,
                  out_json: str | os.PathLike, gpu: dict | None = None) -> dict:
    """Align piece `index` exactly and speak it with the neural voice (step 2).

    The piece's audio has exactly the recording's samples of its span; its record holds the
    frames of each symbol (blanks folded into the symbol before) from where its speech starts.
    """
    import soundfile as sf
    import torch

    from vestnik import media
    from vestnik.acoustic.align import align_piece, normalised_frames
    from vestnik.acoustic.speak import fold_blanks
    from vestnik.acoustic.symbols import SPACE
    from vestnik.mel import log_mel
    from vestnik.tts.neural import voice

    settings = revoice_settings(settings, job)
    neural = engine_settings("tts", "neural", tts.get("neural"), job)
    plan = read_plan(plan_path)
    piece = plan["pieces"][index]
    samples, rate = sf.read(recording, start=piece["start"], stop=piece["end"], dtype="float32")
    if rate != SAMPLE_RATE:
        raise VestnikError(f"the plan's recording is {rate} Hz, not {SAMPLE_RATE}",
                           path=recording)
    levels = frame_levels(samples)
    speech = levels > plan["silence_dbfs"]
    lo, hi = speech_span(speech)
    names = plan["symbols"][piece["first_symbol"]: piece["end_symbol"]]
    first_symbol = piece["first_symbol"]
    while names and names[0] == SPACE:
        names, first_symbol = names[1:], first_symbol + 1
    while names and names[-1] == SPACE:
        names = names[:-1]
    span = np.zeros((hi - lo) * HOP, np.float32)
    chunk = samples[lo * HOP: hi * HOP]
    span[: len(chunk)] = chunk
    torch.set_num_threads(1)
    with engine_device(neural, gpu, job) as device:
        spoken = voice({**neural, "device": device})
        model = spoken.acoustic
        starts = [0] + [k - first_symbol for k in
                        (s["first_symbol"] for s in plan["sentences"])
                        if first_symbol < k < first_symbol + len(names)]
        parts, mu, owner = encode_sentences(model, names, starts)
        n_tokens = len(mu)
        frames = normalised_frames(model, log_mel(span))[: hi - lo]
        offset = piece["start"] // HOP + lo
        if n_tokens > len(frames):
            raise VestnikError(
                f"the transcript does not match the recording at {clock(offset * FRAME_SECONDS)}"
                f"-{clock((offset + len(frames)) * FRAME_SECONDS)}: {len(names)} sounds and gaps "
                f"for {len(frames) * FRAME_SECONDS:.2f} s of speech", job=job)
        path = align_piece(mu, frames)
        sentences = [s["first_symbol"] for s in plan["sentences"]]
        script = Transcript([s["text"] for s in plan["sentences"]], plan["symbols"], sentences)

        def words_at(a: int, b: int) -> str:
            owned = owner[path.token[a:b]]
            owned = owned[owned >= 0]
            if owned.size == 0:
                return ""
            return script.words_near(first_symbol + int(owned.min()),
                                     first_symbol + int(owned.max()))

        fit = check_fit(job, path.fit, speech[lo:hi], settings, offset, words_at)
        durations = path.durations(n_tokens)
        add_blank = bool(model.config["add_blank"])
        mels, symbol_counts, position = [], [], 0
        with torch.inference_mode():  # sentence by sentence, as they were encoded
            for part in parts:
                forced = durations[position: position + len(part.ids)]
                position += len(part.ids)
                tokens = torch.tensor([part.ids], dtype=torch.long, device=spoken.device)
                mel, _, _ = model.infer(tokens, durations=torch.from_numpy(forced[None]).to(
                    spoken.device))
                mels.append(mel[0].float().cpu().numpy())
                symbol_counts += fold_blanks(forced.tolist(), add_blank)
        audio = spoken.vocode(np.concatenate(mels, axis=1))
    gain = pause_gain(speech, max(1, round(settings["min_pause"] / FRAME_SECONDS)), len(samples))
    out = np.zeros(len(samples), np.float32)
    take = min(len(audio), len(samples) - lo * HOP)
    out[lo * HOP: lo * HOP + take] = audio[:take]
    out *= gain
    media.write_wav(out_wav, out, SAMPLE_RATE)
    record = {
        "piece": index,
        "start": piece["start"],
        "end": piece["end"],
        "speech_start_frame": offset,
        "first_symbol": first_symbol,
        "symbols": names,
        "frames": [int(f) for f in symbol_counts],
        "fit": fit,
        "mean_fit": round(float(path.fit[speech[lo:hi]].mean()) if speech[lo:hi].any()
                          else 0.0, 3),
    }
    write_json(out_json, record)
    log.info("job %s piece %d: %.2f-%.2f s, %d symbols, worst fit %s", job, index,
             piece["start"] / SAMPLE_RATE, piece["end"] / SAMPLE_RATE, len(names), fit)
    return record


# --- step 3: the join ---------------------------------------------------------------------------

def piece_events(record: dict, min_pause_frames: int) -> tuple[list[dict], list[tuple]]:
    """Phoneme events of one piece on the recording's clock, and (symbol index, start, end)
    seconds of each of its symbols; a word gap that holds a pause becomes a pause event."""
    from vestnik.acoustic.speak import phoneme_events
    from vestnik.acoustic.symbols import PUNCTUATION, SPACE

    names = [PUNCTUATION[0] if s == SPACE and f >= min_pause_frames else s
             for s, f in zip(record["symbols"], record["frames"], strict=True)]
    offset = record["speech_start_frame"] * FRAME_SECONDS
    events = phoneme_events(names, record["frames"], offset, frame_seconds=FRAME_SECONDS)
    times, frame = [], record["speech_start_frame"]
    for k, count in enumerate(record["frames"]):
        times.append((record["first_symbol"] + k, frame * FRAME_SECONDS,
                      (frame + count) * FRAME_SECONDS))
        frame += count
    return events, times


def join_pieces(job: str, plan_path: str | os.PathLike, piece_wavs: Sequence[str],
                piece_jsons: Sequence[str], settings: dict, out_wav: str | os.PathLike,
                out_json: str | os.PathLike):
    """Lay the pieces end to end into the job's speech (step 3): the recording's exact
    length, sentence and phoneme events on its clock."""
    from vestnik import media
    from vestnik.tts.speech import Speech

    settings = revoice_settings(settings, job)
    plan = read_plan(plan_path)
    if len(piece_wavs) != len(plan["pieces"]) or len(piece_jsons) != len(plan["pieces"]):
        raise VestnikError(f"the plan has {len(plan['pieces'])} pieces, "
                           f"{len(piece_wavs)} were given", job=job, path=plan_path)
    audio, events, times = [], [], []
    min_pause = max(1, round(settings["min_pause"] / FRAME_SECONDS))
    for piece, wav, record_path in zip(plan["pieces"], piece_wavs, piece_jsons, strict=True):
        samples = media.read_audio(wav, SAMPLE_RATE)
        if len(samples) != piece["end"] - piece["start"]:
            raise VestnikError(f"piece {piece['piece']} has {len(samples)} samples, its span "
                               f"{piece['end'] - piece['start']}", job=job, path=wav)
        audio.append(samples)
        record = json.loads(Path(record_path).read_text(encoding="utf-8"))
        found, spans = piece_events(record, min_pause)
        events += found
        times += spans
    samples = np.concatenate(audio)
    duration = len(samples) / SAMPLE_RATE
    starts = {k: (a, b) for k, a, b in times}
    sentence_starts = [s["first_symbol"] for s in plan["sentences"]] + [len(plan["symbols"])]
    for k, sentence in enumerate(plan["sentences"]):
        inside = [starts[i] for i in range(sentence_starts[k], sentence_starts[k + 1])
                  if i in starts]
        if inside:
            events.append({"type": "sentence", "start": round(inside[0][0], 6),
                           "end": round(min(duration, inside[-1][1]), 6),
                           "text": sentence["text"]})
    for event in events:
        event["end"] = round(min(event["end"], duration), 6)
    events = [e for e in events if e["end"] > e["start"]]
    text = " ".join(s["text"] for s in plan["sentences"])
    speech = Speech(samples, SAMPLE_RATE, events, text, "neural")
    speech.save(out_wav, out_json)
    log.info("job %s: re-voiced %.2f s in %d pieces", job, duration, len(audio))
    return speech


# --- all three steps in one process ----------------------------------------------------------

def revoice_file(recording: str | os.PathLike, transcript: str, tts: dict, settings: dict,
                 out_wav: str | os.PathLike, out_json: str | os.PathLike, *,
                 job: str = "revoice", workdir: str | os.PathLike | None = None,
                 gpu: dict | None = None) -> tuple[object, list[dict]]:
    """Re-voice one recording outside the workflow (`vestnik revoice`, the benchmark): the
    same plan, pieces and join as the workflow's rules, run one after another in this process.

    The plan and pieces go to `workdir` (a temporary folder when None). Returns the speech and
    the pieces' records.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vestnik-revoice-") as scratch:
        folder = Path(workdir) if workdir is not None else Path(scratch)
        (folder / "pieces").mkdir(parents=True, exist_ok=True)
        plan_path, recording_wav = folder / "plan.json", folder / "recording.wav"
        plan = plan_revoicing(job, recording, transcript, tts, settings, plan_path,
                              recording_wav)
        wavs, records = [], []
        for piece in plan["pieces"]:
            wav = folder / "pieces" / f"{piece['piece']}.wav"
            record = folder / "pieces" / f"{piece['piece']}.json"
            revoice_piece(job, plan_path, recording_wav, piece["piece"], tts, settings, wav,
                          record, gpu=gpu)
            wavs.append(str(wav))
            records.append(str(record))
        speech = join_pieces(job, plan_path, wavs, records, settings, out_wav, out_json)
        return speech, [json.loads(Path(r).read_text(encoding="utf-8")) for r in records]


def symbol_starts(records: Sequence[dict]) -> tuple[list[str], list[float]]:
    """Phone and pause symbols (word gaps left out) of re-voiced pieces and their start times
    on the recording's clock, as the boundary error against phone labels compares them."""
    from vestnik.acoustic.symbols import SPACE

    kept, starts = [], []
    for record in records:
        frame = record["speech_start_frame"]
        for symbol, count in zip(record["symbols"], record["frames"], strict=True):
            if symbol != SPACE:
                kept.append(symbol)
                starts.append(frame * FRAME_SECONDS)
            frame += count
    return kept, starts
