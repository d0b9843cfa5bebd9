"""Neural TTS synthesis speed: acoustic model + HiFi-GAN on a ~30 s Russian text.

Usage (from the repo root):
    .venv/bin/python bench/acoustic.py [--device cpu|cuda] [--threads N] [--repeats 3]
        [--acoustic results/models/acoustic/<exp>/model.pt]
        [--vocoder results/models/vocoder/<exp>/generator.pt] [--json out.json]

Without model files it builds each network at its configured size with random weights (speed
does not depend on training) and sets the duration predictor's bias so every token lasts three
frames, 70 ms per phoneme with its blank: about RUSLAN's speaking rate, so the audio is about as
long as trained speech (~30 s here) and the seconds-of-audio figures are comparable. Reported: audio
seconds per compute second for the acoustic model alone, the vocoder alone and the whole engine
(text normalisation and eSpeak phonemes included), best of `--repeats` after one warm-up.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TEXT = (
    "В настоящее время реализуется проект строительства волоконно-оптической линии по дну "
    "Каспийского моря между Актау и Сумгаитом. Участники от Казахстана оператор Казахтелеком, "
    "от Азербайджана - Азертелеком. Протяжённость кабеля составляет 380 километров. Стоимость "
    "проекта составляет 44 миллиона долларов США. Завершение проекта ожидается в октябре 2026 "
    "года."
)
SETUPS = {
    "ruslan + v1": ("ruslan", "v1"),
    "ruslan + v3": ("ruslan", "v3"),
    "tiny + tiny": ("tiny", {"base": "v3", "upsample_initial_channel": 32}),
}
"""Acoustic experiment (its model shape from config/config.yaml) and vocoder generator."""


def _acoustic_shape(name: str) -> dict:
    import yaml

    from vestnik.acoustic.config import resolve_experiment

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    return resolve_experiment(name, config["acoustic"]["experiments"][name])["model"]


def random_files(folder: Path, acoustic: str, generator: str | dict) -> tuple[Path, Path]:
    """Model files of the given shapes with random weights and three-frame token durations."""
    import torch

    from vestnik.acoustic import symbols
    from vestnik.acoustic.checkpoint import export_model
    from vestnik.acoustic.model import AcousticModel
    from vestnik.vocoder.checkpoint import export_generator
    from vestnik.vocoder.config import resolve_generator
    from vestnik.vocoder.models import Generator

    torch.manual_seed(0)
    model = AcousticModel(len(symbols.SYMBOLS), _acoustic_shape(acoustic))
    with torch.no_grad():
        model.duration.out.weight.zero_()
        model.duration.out.bias.fill_(math.log(3.0))
    export_model(model, folder / "model.pt")
    export_generator(Generator.from_config(resolve_generator(generator)), folder / "generator.pt")
    return folder / "model.pt", folder / "generator.pt"


def measure(acoustic: Path, vocoder: Path, device: str, repeats: int) -> dict:
    import torch

    from vestnik.acoustic import symbols
    from vestnik.acoustic.synth import NeuralVoice
    from vestnik.text.normalize import normalize, split_sentences

    voice = NeuralVoice(acoustic, vocoder, device)
    pieces = [symbols.text_tokens(p).ids for p in split_sentences(normalize(TEXT))]

    def sync() -> None:
        if voice.device.type == "cuda":
            torch.cuda.synchronize()

    voice.synthesize(TEXT)  # warm-up (kernels, caches)
    best = {"acoustic": math.inf, "vocoder": math.inf, "engine": math.inf}
    seconds = 0.0
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        mels = [voice.mel(ids)[0] for ids in pieces]
        sync()
        best["acoustic"] = min(best["acoustic"], time.perf_counter() - start)
        start = time.perf_counter()
        for mel in mels:
            voice.vocode(mel)
        sync()
        best["vocoder"] = min(best["vocoder"], time.perf_counter() - start)
        start = time.perf_counter()
        speech = voice.synthesize(TEXT)
        sync()
        best["engine"] = min(best["engine"], time.perf_counter() - start)
        seconds = speech.duration
    frames = sum(mel.shape[1] for mel in mels)
    audio = frames * 256 / 22050
    return {
        "speech_seconds": round(seconds, 2),
        "acoustic_params": sum(p.numel() for p in voice.acoustic.parameters()),
        "vocoder_params": sum(p.numel() for p in voice.vocoder.parameters()),
        **{f"{k}_s": round(v, 3) for k, v in best.items()},
        "acoustic_x_realtime": round(audio / best["acoustic"], 1),
        "vocoder_x_realtime": round(audio / best["vocoder"], 1),
        "engine_x_realtime": round(seconds / best["engine"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--acoustic", type=Path, help="a trained model.pt (else random weights)")
    parser.add_argument("--vocoder", type=Path, help="a trained generator file")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, "
          f"cpus {os.cpu_count()}; uptime: {load}")
    results = {}
    if args.acoustic and args.vocoder:
        results["given files"] = measure(args.acoustic, args.vocoder, args.device, args.repeats)
    else:
        for label, (acoustic, generator) in SETUPS.items():
            with tempfile.TemporaryDirectory() as folder:
                files = random_files(Path(folder), acoustic, generator)
                results[label] = measure(*files, args.device, args.repeats)
    for label, row in results.items():
        print(f"{label:>12}: {json.dumps(row)}")
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime after: {load}")
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "results": results}, indent=2)
                             + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
