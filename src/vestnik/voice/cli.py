"""`vestnik voice export` builds a voice folder from trained models; `vestnik voice check`
loads one (every file against voice.json) and optionally speaks a text with it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vestnik.errors import VestnikError

log = logging.getLogger("vestnik.voice")

VOICES = "resources/voices"
"""Where shipped voices live in the repository."""


def cmd_export(args: argparse.Namespace) -> None:
    from vestnik import layout
    from vestnik.config import load_configs
    from vestnik.corpus import corpus_root
    from vestnik.corpus.preprocess import CleanSettings
    from vestnik.tts.neural import model_files
    from vestnik.voice.build import build_voice, metrics_from_files

    base = "config/config.yaml"
    paths = ([base] if Path(base).is_file() else []) + [args.config]
    config = load_configs(*dict.fromkeys(paths))
    files = model_files({"acoustic": args.acoustic, "vocoder": args.vocoder})
    for weight in files.values():
        if not Path(weight.path).is_file():
            hint = (f" (train it: snakemake --configfile {args.config} {weight.path})"
                    if weight.experiment else "")
            raise VestnikError(f"model file not found{hint}", path=weight.path)
    metrics = None
    if args.acoustic_metrics or args.vocoder_metrics:
        if not (args.acoustic_metrics and args.vocoder_metrics):
            raise VestnikError("give both --vocoder-metrics and --acoustic-metrics, or neither")
        metrics = metrics_from_files(args.vocoder_metrics, args.acoustic_metrics)
    else:  # the evaluation rules' results of experiments, when they are there
        names = {kind: weight.experiment for kind, weight in files.items()}
        found = {kind: Path(layout.fill(pattern, name=names[kind])) for kind, pattern in
                 (("vocoder", layout.VOCODER_METRICS), ("acoustic", layout.ACOUSTIC_METRICS))
                 if names[kind]}
        if len(found) == 2 and all(path.is_file() for path in found.values()):
            metrics = metrics_from_files(found["vocoder"], found["acoustic"])
    ruslan = config["ruslan"]
    out = Path(args.out or Path(VOICES) / args.name)
    wall_time = args.wall_time or _benchmarked_wall_time(files)
    build_voice(
        out,
        acoustic=files["acoustic"].path,
        generator=files["vocoder"].path,
        val_tsv=args.val or layout.CORPUS_VAL,
        corpus_root=args.corpus_root or corpus_root(ruslan),
        metrics=metrics,
        clean=CleanSettings.from_config({k: ruslan[k] for k in ("trim_db", "trim_margin")}),
        force=args.force,
        limit=args.limit,
        config=args.config,
        trained_on=args.trained_on,
        wall_time=wall_time,
    )
    print(out)


def _benchmarked_wall_time(files: dict) -> str | None:
    """The training rules' wall times from their Snakemake benchmark files, for experiments."""
    from vestnik import layout
    from vestnik.io import read_tsv

    parts = []
    for kind, weight in files.items():
        if not weight.experiment:
            continue
        path = Path(layout.fill(layout.MODEL_BENCHMARK, kind=kind, name=weight.experiment,
                                step="train"))
        if path.is_file():
            rows = read_tsv(path)
            if rows and rows[-1].get("s"):
                parts.append(f"{kind} {float(rows[-1]['s']):.0f} s")
    return ", ".join(parts) + " (snakemake benchmarks)" if parts else None


def cmd_check(args: argparse.Namespace) -> None:
    from vestnik.voice.package import read_voice

    voice = read_voice(args.folder)
    gate = voice.manifest.get("gate") or {}
    state = "shippable" if gate.get("passed") else "NOT shippable: " + "; ".join(
        gate.get("problems") or ["no gate record"])
    print(f"{voice.folder}: voice {voice.name}, every file matches voice.json ({state})")
    if args.text:
        from vestnik.tts.voice import OnnxVoice

        speech = OnnxVoice(voice.folder, threads=args.threads).synthesize(args.text)
        if args.out:
            speech.save(args.out, Path(args.out).with_suffix(".json"))
        print(f"spoke {speech.duration:.2f} s")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("voice", help="build or check a voice folder (docs/voice.md)",
                                   description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="voice_command", required=True)
    export = sub.add_parser("export", help="voice folder from trained models, through the gate")
    export.add_argument("name", help="the voice's name (its folder under resources/voices/)")
    export.add_argument("--acoustic", required=True,
                        help="an acoustic.experiments name, or a model.pt path")
    export.add_argument("--vocoder", required=True,
                        help="a vocoder.experiments name, or a generator.pt path")
    export.add_argument("--config", default="config/voice.yaml",
                        help="config the models were trained with, merged over "
                        "config/config.yaml as snakemake does (its ruslan: corpus)")
    export.add_argument("--out", default=None, help="folder (default resources/voices/NAME)")
    export.add_argument("--val", default=None, help="held-out split (default the workflow's)")
    export.add_argument("--corpus-root", default=None,
                        help="corpus with labels/ and COPYRIGHT (default the config's)")
    export.add_argument("--vocoder-metrics", default=None, help="a vocoder eval metrics.json")
    export.add_argument("--acoustic-metrics", default=None,
                        help="an acoustic eval metrics.json")
    export.add_argument("--limit", type=int, default=None, help="held-out recordings scored")
    export.add_argument("--trained-on", default=None, help="device, for the README")
    export.add_argument("--wall-time", default=None, help="training wall time, for the README")
    export.add_argument("--force", action="store_true",
                        help="build a voice under the shipping bar, marked unshippable")
    export.set_defaults(func=cmd_export)
    check = sub.add_parser("check", help="load a voice folder and check every file")
    check.add_argument("folder")
    check.add_argument("--text", default=None, help="also speak this text with onnxruntime")
    check.add_argument("--out", default=None, help="wav of the spoken text")
    check.add_argument("--threads", type=int, default=0)
    check.set_defaults(func=cmd_check)
