"""The voice on the CPU: speed of the default jobs' TTS (onnxruntime vs torch vs eSpeak NG) and
how well the procedural mouth's phoneme track follows each engine's speech.

Usage (from the repo root):
    .venv/bin/python bench/voice_tts.py [--threads 2] [--repeats 3] [--json out.json]
        [--acoustic model.pt --vocoder generator.pt]     # trained files (else random weights)

Without files the networks are config/voice.yaml's `voice` shapes with random weights (speed
does not depend on training) and every token lasts three frames, as bench/acoustic.py does;
with files they are the trained ones. A voice folder is built from them (vestnik.voice.build,
gate forced: only the speed is measured) and each default job's text (config/config.yaml:
caspian, greeting, lecture) is spoken by the `voice` engine (onnxruntime), the `neural`
engine (torch) and eSpeak NG, in turn within each round, best of `--repeats` after a warm-up:
seconds of audio per second of compute (x real time), by the wall clock and by the process's
CPU time (with `--threads 1` the latter hardly depends on what else the machine runs).

The mouth measure: the procedural engine's openness track from the speech's phoneme events
(vestnik.lipsync.visemes.openness_from_events, 25 fps) against the speech's amplitude envelope
(vestnik.lipsync.quality.envelope), Pearson r per job. It says whether the phoneme timings an
engine reports fit the audio it made; with random weights the audio has no speech structure,
so it means something only with trained files. `--render JOB ...` also renders those jobs
through the workflow with each engine and fits every frame's mouth independently
(bench/lipsync_quality.py's r_envelope).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

FPS = 25


def job_texts() -> dict[str, str]:
    import yaml

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    texts = {}
    for name, job in config["jobs"].items():
        texts[name] = job.get("text") or (ROOT / job["text_file"]).read_text(encoding="utf-8")
    return texts


def random_files(folder: Path) -> tuple[Path, Path]:
    """config/voice.yaml's shapes, random weights, three frames per token."""
    import torch

    from vestnik.acoustic import symbols
    from vestnik.acoustic.checkpoint import export_model
    from vestnik.acoustic.config import resolve_experiment as acoustic_experiment
    from vestnik.acoustic.model import AcousticModel
    from vestnik.config import load_configs
    from vestnik.vocoder.checkpoint import export_generator
    from vestnik.vocoder.config import resolve_experiment as vocoder_experiment
    from vestnik.vocoder.models import Generator

    config = load_configs(ROOT / "config/config.yaml", ROOT / "config/voice.yaml")
    shape = acoustic_experiment("voice", config["acoustic"]["experiments"]["voice"])["model"]
    generator = vocoder_experiment("voice", config["vocoder"]["experiments"]["voice"])
    torch.manual_seed(0)
    model = AcousticModel(len(symbols.SYMBOLS), shape)
    with torch.no_grad():
        model.duration.out.weight.zero_()
        model.duration.out.bias.fill_(math.log(3.0))
    export_model(model, folder / "model.pt", {"experiment": "random", "step": 0, "steps": 0})
    export_generator(Generator.from_config(generator["generator"]), folder / "generator.pt",
                     {"experiment": "random", "step": 0, "steps": 0})
    return folder / "model.pt", folder / "generator.pt"


def voice_folder(acoustic: Path, generator: Path, folder: Path) -> Path:
    from vestnik.voice.build import build_voice

    corpus = folder / "corpus"
    corpus.mkdir()
    (corpus / "COPYRIGHT").write_text("benchmark: no corpus\n")
    (folder / "val.tsv").write_text("id\ttext\nbench\tx\n")
    return build_voice(folder / "voice", acoustic=acoustic, generator=generator,
                       val_tsv=folder / "val.tsv", corpus_root=corpus,
                       metrics={"vocoder": {}, "acoustic": {}}, force=True)


def mouth_r(speech) -> float:
    import numpy as np

    from vestnik.lipsync import quality
    from vestnik.lipsync.visemes import openness_from_events

    frames = int(speech.duration * FPS)
    opening = openness_from_events(speech.events, 0, frames, FPS)
    heard = quality.envelope(speech.samples, speech.sample_rate, FPS, frames)
    return float(np.corrcoef(opening, heard)[0, 1])


def rendered_mouth(folder: Path, work: Path, jobs: list[str]) -> dict[str, dict]:
    """The procedural engine's rendered mouth against the speech, by bench/lipsync_quality.py's
    independent dlib fit of every frame (r_envelope), for each job spoken by eSpeak NG and by
    the voice folder: the workflow renders both in `work`."""
    import subprocess

    import yaml

    sys.path.insert(0, str(ROOT / "bench"))
    from lipsync_quality import measure_job

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    texts = job_texts()
    config["jobs"] = {}
    for job in jobs:
        config["jobs"][f"{job}_espeak"] = {"text": texts[job]}
        config["jobs"][f"{job}_voice"] = {"text": texts[job], "tts": {
            "engine": "voice", "voice": {"path": str(folder)}}}
    config["defaults"]["avatar"] = str(ROOT / "resources" / "avatar.png")
    (work / "config").mkdir(parents=True, exist_ok=True)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True),
                                                 encoding="utf-8")
    targets = [f"results/jobs/{name}/final.mp4" for name in config["jobs"]]
    subprocess.run([str(Path(sys.executable).with_name("snakemake")), "--snakefile",
                    str(ROOT / "Snakefile"), "--directory", str(work), "--profile",
                    str(ROOT / "profiles" / "default"), "--cores", "2", *targets],
                   check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    return {name: measure_job(work / "results" / "jobs" / name) for name in config["jobs"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--acoustic", type=Path, default=None)
    parser.add_argument("--vocoder", type=Path, default=None)
    parser.add_argument("--jobs", nargs="*", default=None)
    parser.add_argument("--render", nargs="*", default=None, metavar="JOB",
                        help="also render these jobs (eSpeak and voice) and fit their mouths")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import torch

    from vestnik.acoustic.synth import NeuralVoice
    from vestnik.config import engine_settings
    from vestnik.tts import espeak
    from vestnik.tts.voice import OnnxVoice

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="voice-tts-"))
    if args.acoustic and args.vocoder:
        acoustic, generator, weights = args.acoustic, args.vocoder, "trained files"
    else:
        acoustic, generator = random_files(tmp)
        weights = "random weights, config/voice.yaml shapes"
    folder = voice_folder(acoustic, generator, tmp)
    onnx = OnnxVoice(folder, threads=args.threads)
    neural = NeuralVoice(acoustic, generator, "cpu")
    settings = engine_settings("tts", "espeak", {})
    engines = {
        "voice (onnxruntime)": onnx.synthesize,
        "neural (torch)": neural.synthesize,
        "espeak": lambda text: espeak.synthesize(text, **settings),
    }
    texts = job_texts()
    if args.jobs:
        texts = {name: texts[name] for name in args.jobs}
    best = {(job, name): math.inf for job in texts for name in engines}
    best_cpu = dict(best)
    speeches = {}
    for job, text in texts.items():
        for name, speak in engines.items():
            speeches[job, name] = speak(text)  # warm-up
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for job, text in texts.items():
            for name, speak in engines.items():
                start, cpu = time.perf_counter(), time.process_time()
                speak(text)
                best[job, name] = min(best[job, name], time.perf_counter() - start)
                best_cpu[job, name] = min(best_cpu[job, name], time.process_time() - cpu)
    load_after = os.getloadavg()[0]
    print(f"{weights}; {args.threads} threads; best of {args.repeats} alternated rounds; "
          f"load average {load_before:.2f} -> {load_after:.2f}")
    print("| job | engine | speech (s) | x real time | per CPU second | mouth r |")
    print("|---|---|---|---|---|---|")
    rows = []
    for job in texts:
        for name in engines:
            speech = speeches[job, name]
            row = {"job": job, "engine": name, "seconds": round(speech.duration, 2),
                   "x_realtime": round(speech.duration / best[job, name], 1),
                   "x_realtime_cpu": round(speech.duration / best_cpu[job, name], 1),
                   "mouth_r": round(mouth_r(speech), 3)}
            rows.append(row)
            print(f"| {job} | {name} | {row['seconds']} | {row['x_realtime']}x | "
                  f"{row['x_realtime_cpu']}x | {row['mouth_r']:.2f} |")
    total = {name: sum(speeches[j, name].duration for j in texts)
             / sum(best[j, name] for j in texts) for name in engines}
    print("all jobs: " + ", ".join(f"{name} {value:.1f}x" for name, value in total.items()))
    rendered = {}
    if args.render:
        rendered = rendered_mouth(folder, tmp / "render", args.render)
        print("| rendered job | speech (s) | r vs envelope | opening range |")
        print("|---|---|---|---|")
        for name, figures in rendered.items():
            print(f"| {name} | {figures['seconds']} | {figures['r_envelope']:.2f} | "
                  f"{figures['opening_range']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"weights": weights, "threads": args.threads,
                                         "load": [load_before, load_after], "rows": rows,
                                         "all_jobs_x_realtime": total, "rendered": rendered},
                                        indent=1))


if __name__ == "__main__":
    main()
