"""Re-voicing (vestnik.revoice) on festvox-ru's real recordings: mismatch calibration, quality,
and the 10-minute recording at `--cores 1` against `--cores 2`.

`calibrate` aligns recordings to their own transcripts and to shuffled ones (each recording
with another recording's transcript), and long recordings of three utterances whose middle
transcript is swapped; it prints the worst stretch's fit of each kind, the threshold between
them, and whether the swapped stretch is the one named.
`quality` re-voices single recordings (the held-out ones first) with the library's one-process
path (`vestnik revoice`): the alignment's boundary error against the human phone labels, the
loudness envelope r at 25 fps, the length error.
`speed` builds a recording of `--minutes` from consecutive festvox recordings (audio and
transcripts concatenated, in a scratch folder: never committed), runs the re-voicing job
through Snakemake to speech.wav at `--cores 1` and at `--cores 2` in fresh folders, and reports
both wall times and their ratio, each piece's duration and speech-extent error, the envelope r
of the whole and per piece, and the boundary error over the whole long recording.

Usage:  python bench/revoice.py calibrate [--acoustic M] [--count 150] [--out FILE.json]
        python bench/revoice.py quality [--acoustic M --vocoder G] [--count 40] [--out FILE]
        python bench/revoice.py speed [--acoustic M --vocoder G] [--minutes 10] [--out FILE]
Models default to results/models/{acoustic,vocoder}/real/ (config/real-speech.yaml).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FESTVOX = Path.home() / ".cache" / "vestnik" / "festvox-ru" / "unpacked"
MODEL = ROOT / "results" / "models" / "acoustic" / "real" / "model.pt"
GENERATOR = ROOT / "results" / "models" / "vocoder" / "real" / "generator.pt"
HELD_OUT = ROOT / "results" / "data" / "ruslan" / "val.tsv"


def _festvox(root: Path) -> tuple[Path, list[tuple[str, str]]]:
    from vestnik.corpus.festvox import read_transcripts, voice_dir

    voice = voice_dir(root)
    return voice, read_transcripts(voice / "etc" / "txt.done.data")


def _ordered(rows: list[tuple[str, str]], held_out: Path) -> list[tuple[str, str]]:
    """Held-out recordings first (the val split of the real-speech corpus, if built)."""
    held = set()
    if held_out.is_file():
        from vestnik.io import read_tsv

        held = {r["id"] for r in read_tsv(held_out)}
    return sorted(rows, key=lambda r: (r[0] not in held, r[0]))


def _worst_fit(job, model, samples, text, settings) -> tuple[float, float | None]:
    """(worst stretch fit, its time) of the banded alignment; -inf when it is refused."""
    from vestnik.acoustic.align import stretch_fits
    from vestnik.errors import VestnikError
    from vestnik.revoice import (
        FRAME_SECONDS,
        HOP,
        align_recording,
        prepare_recording,
        transcript_tokens,
    )

    samples, levels, threshold = prepare_recording(samples, job, None, settings["silence_db"])
    padded = np.zeros(len(levels) * HOP, np.float32)
    padded[: len(samples)] = samples
    try:
        aligned = align_recording(job, model, padded, transcript_tokens(text), levels > threshold,
                                  settings["band"])
    except VestnikError:
        return float("-inf"), None
    window = max(1, round(settings["match_window"] / FRAME_SECONDS))
    fits, starts = stretch_fits(aligned.path.fit, aligned.speech, window)
    k = int(np.argmin(fits))
    return float(fits[k]), float(starts[k] * FRAME_SECONDS)


def calibrate(args: argparse.Namespace) -> dict:
    import torch

    from vestnik import media
    from vestnik.acoustic.checkpoint import load_acoustic
    from vestnik.revoice import SAMPLE_RATE, revoice_settings

    torch.set_num_threads(1)
    settings = revoice_settings({"match_window": args.match_window} if args.match_window
                                else {})
    model, _ = load_acoustic(args.acoustic)
    voice, rows = _festvox(args.festvox)
    rows = _ordered(rows, args.held_out)[: args.count]
    audio = {i: media.read_audio(voice / "wav" / f"{i}.wav", SAMPLE_RATE) for i, _ in rows}
    rng = np.random.default_rng(0)
    shift = rng.permutation(len(rows))
    matched, shuffled, partial = [], [], []
    for k, (rid, text) in enumerate(rows):
        matched.append(_worst_fit(rid, model, audio[rid], text, settings)[0])
        other = rows[shift[k]] if shift[k] != k else rows[(k + 1) % len(rows)]
        shuffled.append(_worst_fit(rid, model, audio[rid], other[1], settings)[0])
    for k in range(0, len(rows) - 3, 3):
        (a, ta), (b, _), (c, tc) = rows[k: k + 3]
        swap = rows[(k + len(rows) // 2) % len(rows)][1]
        samples = np.concatenate([audio[a], audio[b], audio[c]])
        start, end = len(audio[a]) / SAMPLE_RATE, (len(audio[a]) + len(audio[b])) / SAMPLE_RATE
        fit, at = _worst_fit(f"{a}+{b}+{c}", model, samples, f"{ta} {swap} {tc}", settings)
        named = at is not None and start - settings["match_window"] <= at <= end
        partial.append({"fit": fit, "named_middle": bool(named)})
    finite_shuffled = [f for f in shuffled if np.isfinite(f)]
    result = {
        "model": str(args.acoustic),
        "recordings": len(rows),
        "match_window": settings["match_window"],
        "matched": _summary(matched),
        "lowest_matched": sorted(zip(matched, [r[0] for r in rows], strict=True))[:5],
        "shuffled": {**_summary(finite_shuffled),
                     "refused_outright": len(shuffled) - len(finite_shuffled)},
        "partial": {**_summary([p["fit"] for p in partial if np.isfinite(p["fit"])]),
                    "count": len(partial),
                    "refused_outright": sum(not np.isfinite(p["fit"]) for p in partial),
                    "worst_in_swapped_stretch": sum(p["named_middle"] for p in partial)},
    }
    for threshold in (-4.0, -5.0, -6.0, -7.0, -8.0, -9.0, -10.0):
        result[f"at_{threshold}"] = {
            "matched_refused": int(sum(f < threshold for f in matched)),
            "shuffled_passed": int(sum(f >= threshold for f in shuffled)),
            "partial_passed": int(sum(p["fit"] >= threshold for p in partial)),
        }
    return result


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = np.asarray(values)
    return {"n": len(v), "min": round(float(v.min()), 3),
            "p1": round(float(np.percentile(v, 1)), 3),
            "p5": round(float(np.percentile(v, 5)), 3),
            "median": round(float(np.median(v)), 3),
            "p95": round(float(np.percentile(v, 95)), 3), "max": round(float(v.max()), 3)}


def _tts(args) -> dict:
    return {"engine": "neural", "neural": {"acoustic": str(args.acoustic),
                                           "vocoder": str(args.vocoder), "device": "cpu"}}


def quality(args: argparse.Namespace) -> dict:
    import torch

    from vestnik import media
    from vestnik.corpus.festvox import read_labels
    from vestnik.revoice import SAMPLE_RATE, revoice_file, revoice_settings, symbol_starts
    from vestnik.speech_metrics import boundary_errors, envelope_correlation

    torch.set_num_threads(1)
    settings = revoice_settings({})
    voice, rows = _festvox(args.festvox)
    rows = _ordered(rows, args.held_out)[: args.count]
    held = set()
    if args.held_out.is_file():
        from vestnik.io import read_tsv

        held = {r["id"] for r in read_tsv(args.held_out)}
    errors, held_errors, table = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        for rid, text in rows:
            wav = voice / "wav" / f"{rid}.wav"
            out = Path(scratch) / f"{rid}.wav"
            speech, records = revoice_file(wav, text, _tts(args), settings, out,
                                           out.with_suffix(".json"), job=rid)
            recording = media.read_audio(out, SAMPLE_RATE)
            original = media.read_audio(wav, SAMPLE_RATE)
            kept, starts = symbol_starts(records)
            found = boundary_errors(kept, starts, read_labels(voice / "lab" / f"{rid}.lab"))
            errors += found
            if rid in held:
                held_errors += found
            table.append({"id": rid, "held_out": rid in held,
                          "seconds": round(len(original) / SAMPLE_RATE, 3),
                          "length_error_samples": len(recording) - len(original),
                          "envelope_r": round(envelope_correlation(original, recording,
                                                                   SAMPLE_RATE), 3),
                          "envelope_r_speech": round(_speech_r(original, recording), 3),
                          "boundary_ms": round(1000 * float(np.median(found)), 1)
                          if found else None})
            print(table[-1], flush=True)
    r = [t["envelope_r"] for t in table]
    return {"recordings": len(table), "boundary_error_ms_median": round(
        1000 * float(np.median(errors)), 2), "boundary_pairs": len(errors),
        "held_out": {"recordings": sum(t["held_out"] for t in table),
                     "boundary_error_ms_median": round(1000 * float(np.median(held_errors)), 2)
                     if held_errors else None, "boundary_pairs": len(held_errors)},
        "envelope_r_speech": _summary([t["envelope_r_speech"] for t in table]),
        "within_20ms": round(float(np.mean(np.asarray(errors) <= 0.02)), 3),
        "envelope_r": _summary(r),
        "length_error_samples_max": max(abs(t["length_error_samples"]) for t in table),
        "table": table}


def _speech_r(original: np.ndarray, new: np.ndarray, fps: float = 25.0) -> float:
    """Envelope r over the frames where the recording speaks (its level within 35 dB of its
    loudest frame): how the new voice's loudness follows the recording's inside the speech,
    with the pauses, which the re-voicing keeps silent by construction, left out."""
    from vestnik.revoice import SAMPLE_RATE
    from vestnik.speech_metrics import loudness_envelope

    x = loudness_envelope(original, SAMPLE_RATE, fps)
    y = loudness_envelope(new, SAMPLE_RATE, fps)[: len(x)]
    keep = x > -35.0
    if keep.sum() < 3 or y[keep].std() == 0:
        return 0.0
    return float(np.corrcoef(x[keep], y[keep])[0, 1])


def _long_recording(voice: Path, rows, minutes: float, folder: Path):
    """A recording of consecutive festvox recordings up to `minutes`, its transcript, and
    the human labels moved onto its clock."""
    from vestnik import media
    from vestnik.corpus.festvox import read_labels
    from vestnik.revoice import SAMPLE_RATE

    parts, texts, labels, offset = [], [], [], 0
    for rid, text in rows:
        samples = media.read_audio(voice / "wav" / f"{rid}.wav", SAMPLE_RATE)
        seconds = offset / SAMPLE_RATE
        labels += [(a + seconds, b + seconds, p)
                   for a, b, p in read_labels(voice / "lab" / f"{rid}.lab")]
        parts.append(samples)
        texts.append(text)
        offset += len(samples)
        if offset >= minutes * 60 * SAMPLE_RATE:
            break
    media.write_wav(folder / "long.wav", np.concatenate(parts), SAMPLE_RATE)
    (folder / "long.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    return folder / "long.wav", folder / "long.txt", labels, len(parts)


def _run(workdir: Path, config: dict, cores: int) -> float:
    import yaml

    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True),
                                                    encoding="utf-8")
    snakemake = Path(sys.executable).with_name("snakemake")
    command = [str(snakemake), "--snakefile", str(ROOT / "Snakefile"), "--directory",
               str(workdir), "--profile", str(ROOT / "profiles" / "default"), "--cores",
               str(cores), "results/jobs/long/speech.wav"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(done.stderr[-4000:])
    return wall


def speed(args: argparse.Namespace) -> dict:
    from vestnik import media
    from vestnik.revoice import (
        SAMPLE_RATE,
        frame_levels,
        read_plan,
        revoice_settings,
        symbol_starts,
    )
    from vestnik.speech_metrics import boundary_errors, envelope_correlation

    voice, rows = _festvox(args.festvox)
    scratch = Path(args.workdir or tempfile.mkdtemp(prefix="revoice-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    wav, txt, labels, used = _long_recording(voice, rows, args.minutes, scratch)
    settings = revoice_settings({"piece_seconds": args.piece_seconds})
    config = {"defaults": {"avatar": str(ROOT / "resources" / "avatar.png")},
              "jobs": {"long": {"audio": str(wav), "text_file": str(txt), "tts": _tts(args),
                                "revoice": settings}}}
    load = os.getloadavg()
    walls: dict[int, list[float]] = {}
    for run, cores in enumerate(args.cores):  # alternated runs: 1 2 1 2 ...
        walls.setdefault(cores, []).append(_run(scratch / f"run{run}", config, cores))
        print(f"--cores {cores}: {walls[cores][-1]:.1f} s", flush=True)
    job = scratch / f"run{len(args.cores) - 1}" / "results" / "jobs" / "long"
    one, two = (float(np.median(walls[c])) for c in (min(walls), max(walls)))  # any order
    original = media.read_audio(wav, SAMPLE_RATE)
    new = media.read_audio(job / "speech.wav", SAMPLE_RATE)
    plan = read_plan(job / "revoice" / "plan.json")
    records = [json.loads((job / "revoice" / "pieces" / f"{p['piece']}.json").read_text())
               for p in plan["pieces"]]
    pieces = []
    for piece in plan["pieces"]:
        a, b = piece["start"], piece["end"]
        ours, theirs = new[a:b], original[a:b]
        extent = []
        for signal in (theirs, ours):
            loud = np.flatnonzero(frame_levels(signal) > plan["silence_dbfs"] - 10)
            extent.append((loud[0], loud[-1] + 1) if loud.size else (0, 0))
        pieces.append({
            "piece": piece["piece"], "seconds": round((b - a) / SAMPLE_RATE, 3),
            "duration_error_samples": len(ours) - len(theirs),
            "speech_extent_error_ms": round(1000 * 256 / SAMPLE_RATE * max(
                abs(int(extent[0][0]) - int(extent[1][0])),
                abs(int(extent[0][1]) - int(extent[1][1]))), 1),
            "envelope_r": round(envelope_correlation(theirs, ours, SAMPLE_RATE), 3),
            "envelope_r_speech": round(_speech_r(theirs, ours), 3),
        })
    kept, starts = symbol_starts(records)
    errors = boundary_errors(kept, starts, labels)
    timings = {}
    for stage in ("revoice_plan", "tts"):
        path = job / "benchmarks" / f"{stage}.tsv"
        timings[stage] = float(path.read_text().splitlines()[-1].split("\t")[0])
    piece_seconds = [float((job / "benchmarks" / f"revoice_{p['piece']}.tsv").read_text()
                           .splitlines()[-1].split("\t")[0]) for p in plan["pieces"]]
    return {
        "recording_seconds": round(len(original) / SAMPLE_RATE, 2),
        "festvox_recordings": used,
        "pieces": len(plan["pieces"]),
        "load_before": [round(x, 2) for x in load],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "wall_seconds": {str(c): [round(w, 1) for w in ws] for c, ws in walls.items()},
        "speedup": round(one / two, 3) if len(walls) > 1 else None,
        "step_seconds": {"plan": timings["revoice_plan"], "join": timings["tts"],
                         "pieces_sum": round(sum(piece_seconds), 2),
                         "piece_max": round(max(piece_seconds), 2)},
        "speech_duration_error_samples": len(new) - len(original),
        "envelope_r": round(envelope_correlation(original, new, SAMPLE_RATE), 3),
        "envelope_r_speech": round(_speech_r(original, new), 3),
        "piece_envelope_r_min": min(p["envelope_r"] for p in pieces),
        "piece_envelope_r_speech": _summary([p["envelope_r_speech"] for p in pieces]),
        "piece_duration_error_samples_max": max(abs(p["duration_error_samples"])
                                                for p in pieces),
        "piece_speech_extent_error_ms": _summary([p["speech_extent_error_ms"] for p in pieces]),
        "boundary_error_ms_median": round(1000 * float(np.median(errors)), 2),
        "boundary_pairs": len(errors),
        "worst_fit": plan["fit"],
        "per_piece": pieces,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("calibrate", "quality", "speed"):
        part = sub.add_parser(name)
        part.add_argument("--acoustic", type=Path, default=MODEL)
        part.add_argument("--vocoder", type=Path, default=GENERATOR)
        part.add_argument("--festvox", type=Path, default=FESTVOX)
        part.add_argument("--out", type=Path)
        part.add_argument("--held-out", type=Path, default=HELD_OUT,
                          help="val.tsv of the models' training: these recordings come first")
        if name == "speed":
            part.add_argument("--minutes", type=float, default=10.0)
            part.add_argument("--piece-seconds", type=float, default=20.0)
            part.add_argument("--cores", type=int, nargs="+", default=[1, 2, 1, 2],
                              help="core counts run one after another; the speed-up is the "
                                   "first's median wall time over the last's")
            part.add_argument("--workdir", type=Path)
        else:
            part.add_argument("--count", type=int, default=150 if name == "calibrate" else 40)
        if name == "calibrate":
            part.add_argument("--match-window", type=float,
                              help="seconds of speech per stretch (default: the schema's)")
    args = parser.parse_args()
    result = {"calibrate": calibrate, "quality": quality, "speed": speed}[args.command](args)
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text if args.command != "quality" else
          json.dumps({k: v for k, v in result.items() if k != "table"}, indent=1))
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
