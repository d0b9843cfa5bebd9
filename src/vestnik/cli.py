"""`vestnik` command line: single stages outside Snakemake, for scripting and debugging.

Each subcommand reads the same config as the workflow so a stage run by hand behaves exactly like
the rule that runs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
from pathlib import Path

from vestnik import steps
from vestnik.config import check_job, job_entry, job_input, job_transcript, load_config
from vestnik.errors import VestnikError
from vestnik.runner import setup_logging

DEFAULT_CONFIG = "config/config.yaml"
COMMAND_MODULES: tuple[str, ...] = (
    "vestnik.service.cli", "vestnik.status", "vestnik.vocoder.cli", "vestnik.voice.cli",
)
"""Modules that add their own subcommands through a `register(subparsers)` function."""


def _job_context(args: argparse.Namespace) -> tuple[dict, dict, tuple[str, str]]:
    """Config, settings and input of `--job`, or of an ad-hoc job built from --text/--audio;
    `--avatar` overrides the avatar of either."""
    config = load_config(args.config)
    job = args.job
    text, audio = getattr(args, "text", None), getattr(args, "audio", None)
    if text is not None or audio is not None:
        job = job or "cli"
        entry = {"text": text} if text is not None else {"audio": audio}
        config["jobs"] = {**config.get("jobs", {}), job: entry}
    if not job:
        raise VestnikError("give --job NAME, or --text / --audio")
    if getattr(args, "avatar", None):
        entry = {**job_entry(config, job), "avatar": args.avatar}
        config["jobs"] = {**config["jobs"], job: entry}
    args.job = job
    return config, check_job(config, job), job_input(config, job)


def output_path(path: str, suffix: str) -> Path:
    """An output file the command may write: the format its suffix names, not a folder."""
    out = Path(path)
    if out.suffix.lower() != suffix:
        raise VestnikError(f"the output must be a {suffix} file (this command writes only that)",
                           path=out)
    if out.is_dir():
        raise VestnikError("the output is a folder; give a file name", path=out)
    return out


def speech_timings(speech: Path) -> Path:
    """speech.json beside a speech wav: `vestnik tts` and the workflow write it there."""
    if not speech.is_file():
        raise VestnikError("speech file not found", path=speech)
    timings = speech.with_suffix(".json")
    if not timings.is_file():
        raise VestnikError(
            f"no timings file {timings.name} beside the speech (vestnik tts writes both)",
            path=timings,
        )
    return timings


def cmd_tts(args: argparse.Namespace) -> None:
    out = output_path(args.out, ".wav")
    config, settings, (kind, value) = _job_context(args)
    steps.synthesize_job(args.job, settings, kind, value, str(out), str(out.with_suffix(".json")),
                         gpu=config["gpu"])
    print(out)


def cmd_plan(args: argparse.Namespace) -> None:
    out = output_path(args.out, ".tsv")
    config, settings, _ = _job_context(args)
    timings = Path(args.speech).with_suffix(".json")
    beside = str(timings) if timings.is_file() else None
    for chunk in steps.plan_job(args.speech, settings, config["fps"], str(out), beside):
        print(f"chunk {chunk.chunk}: {chunk.start:.2f}-{chunk.end:.2f} s ({chunk.n_frames} frames)")


def cmd_lipsync(args: argparse.Namespace) -> None:
    """Render a whole speech file as one chunk (no parallelism) into an mp4 with audio."""
    out = output_path(args.out, ".mp4")
    config, settings, _ = _job_context(args)
    speech = Path(args.speech)
    timings = speech_timings(speech)
    with tempfile.TemporaryDirectory() as scratch:
        plan = Path(scratch) / "chunks.tsv"
        settings["chunks"] = {**settings["chunks"], "workers": 1, "max_seconds": None}
        steps.plan_job(str(speech), settings, config["fps"], str(plan), str(timings))
        video = Path(scratch) / "0.mp4"
        steps.render_chunk(
            args.job, settings, config["fps"], str(plan), 0, str(speech),
            str(timings), str(video), str(Path(scratch) / "0.json"), gpu=config["gpu"],
        )
        steps.merge_job([str(video)], str(speech), str(out))
    print(out)


def cmd_merge(args: argparse.Namespace) -> None:
    out = output_path(args.out, ".mp4")
    steps.merge_job(args.videos, args.speech, str(out))
    print(out)


def cmd_revoice(args: argparse.Namespace) -> None:
    """Re-voice a recording with its transcript (vestnik.revoice), as a workflow job would."""
    from vestnik.revoice import revoice_file

    out = output_path(args.out, ".wav")
    config = load_config(args.config)
    entry: dict = {"audio": args.recording}
    if args.text is not None:
        entry["text"] = args.text
    else:
        entry["text_file"] = args.text_file
    neural = {key: value for key, value in (("acoustic", args.acoustic),
                                            ("vocoder", args.vocoder)) if value}
    entry["tts"] = {"engine": "neural", **({"neural": neural} if neural else {})}
    job = args.job
    config["jobs"] = {**config.get("jobs", {}), job: entry}
    settings = check_job(config, job)
    transcript = job_transcript(config, job)
    steps.check_speech_input(job, settings["limits"], "audio", args.recording, transcript)
    from vestnik.revoice import read_transcript

    text = read_transcript(*transcript, job)
    revoice_file(args.recording, text, settings["tts"], settings["revoice"], out,
                 out.with_suffix(".json"), job=job, gpu=config["gpu"])
    print(out)


def _add_job_options(parser: argparse.ArgumentParser, inputs: bool = True) -> None:
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="workflow config (YAML)")
    parser.add_argument("--job", help="a job of the config")
    if inputs:
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--text", help="speak this text instead of a config job's input")
        source.add_argument("--audio", help="use this recording instead of a config job's input")
        parser.add_argument("--avatar", help="override the avatar image or video")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vestnik", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    tts = sub.add_parser("tts", help="speech.wav + speech.json for a job or a text")
    _add_job_options(tts)
    tts.add_argument("--out", required=True, help="output .wav; timings go beside it as .json")
    tts.set_defaults(func=cmd_tts)

    plan = sub.add_parser("plan", help="chunk plan (chunks.tsv) of a speech wav")
    _add_job_options(plan)
    plan.add_argument("--speech", required=True)
    plan.add_argument("--out", required=True, help="output .tsv")
    plan.set_defaults(func=cmd_plan)

    lipsync = sub.add_parser("lipsync", help="lip-synced mp4 of a speech wav, in one piece")
    _add_job_options(lipsync)
    lipsync.add_argument("--speech", required=True, help="speech wav (its .json beside it)")
    lipsync.add_argument("--out", required=True, help="output .mp4")
    lipsync.set_defaults(func=cmd_lipsync)

    revoice = sub.add_parser(
        "revoice", help="a recording spoken again by the neural voice, with its timing")
    revoice.add_argument("recording", help="the recording (any audio file ffmpeg reads)")
    transcript = revoice.add_mutually_exclusive_group(required=True)
    transcript.add_argument("--text", help="what the recording says")
    transcript.add_argument("--text-file", help="UTF-8 file of what the recording says")
    revoice.add_argument("--out", required=True, help="output .wav; timings go beside it")
    revoice.add_argument("--config", default=DEFAULT_CONFIG, help="workflow config (YAML)")
    revoice.add_argument("--acoustic", help="acoustic experiment name or model.pt path")
    revoice.add_argument("--vocoder", help="vocoder experiment name or generator path")
    revoice.add_argument("--job", default="revoice", help="job name used in messages")
    revoice.set_defaults(func=cmd_revoice)

    merge = sub.add_parser("merge", help="join chunk videos and mux the speech")
    merge.add_argument("videos", nargs="+")
    merge.add_argument("--speech", required=True)
    merge.add_argument("--out", required=True, help="output .mp4")
    merge.set_defaults(func=cmd_merge)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        args.func(args)
    except VestnikError as exc:
        print(f"vestnik {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the environment (a path, a port, permissions), not a program bug
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"vestnik {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
