"""Which HiFi-GAN generator fits the CPU target: speed of candidate sizes, torch vs onnxruntime.

Usage (from the repo root):
    .venv/bin/python bench/voice_sizes.py [--seconds 6] [--rounds 3] [--threads 1]

Each candidate generator is built with random weights (speed does not depend on training),
exported to ONNX as a voice folder would hold it, and timed on the same random mel (`--seconds`
of audio, in the engines' 512-frame windows) through the torch inference path and through
onnxruntime. The candidates are timed in turn within each round, so a machine that is busy
slows them alike; the best round of each is reported as seconds of audio per second (x real
time) with its parameter count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CANDIDATES = {
    "v1": "v1",
    "v2": "v2",
    "v2-96": {"base": "v2", "upsample_initial_channel": 96},
    "v2-64": {"base": "v2", "upsample_initial_channel": 64},
    "v3": "v3",
    "v3-128": {"base": "v3", "upsample_initial_channel": 128},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, help="candidate names")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import onnxruntime as ort
    import torch

    from vestnik.acoustic.speak import VOCODER_CONTEXT, VOCODER_WINDOW
    from vestnik.vocoder.config import resolve_generator
    from vestnik.vocoder.models import Generator, count_parameters
    from vestnik.voice.onnx_export import export_generator

    torch.set_num_threads(args.threads)
    frames = int(args.seconds * 22050 / 256)
    mel = np.random.default_rng(0).normal(-5.0, 2.0, (80, frames)).astype(np.float32)
    windows = [mel[:, max(0, s - VOCODER_CONTEXT): min(frames, s + VOCODER_WINDOW
                                                       + VOCODER_CONTEXT)]
               for s in range(0, frames, VOCODER_WINDOW)]
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    names = args.only or list(CANDIDATES)
    runners, params = {}, {}
    folder = Path(tempfile.mkdtemp(prefix="voice-sizes-"))
    for name in names:
        torch.manual_seed(0)
        generator = Generator.from_config(resolve_generator(CANDIDATES[name]))
        generator.remove_weight_norm().eval()
        params[name] = count_parameters(generator)
        (folder / name).mkdir()
        session = ort.InferenceSession(str(export_generator(generator, folder / name)), options,
                                       providers=["CPUExecutionProvider"])

        def run_torch(generator=generator):
            with torch.inference_mode():
                for window in windows:
                    generator(torch.from_numpy(window)[None])

        def run_onnx(session=session):
            for window in windows:
                session.run(None, {"mel": window[None]})

        runners[name] = {"torch": run_torch, "onnx": run_onnx}
        run_torch()
        run_onnx()
    best: dict[str, dict[str, float]] = {name: {} for name in names}
    for _ in range(args.rounds):
        for name in names:
            for path, run in runners[name].items():
                start = time.perf_counter()
                run()
                speed = args.seconds / (time.perf_counter() - start)
                best[name][path] = max(best[name].get(path, 0.0), speed)
    load = os.getloadavg()[0]
    print(f"{args.seconds:.0f} s of audio, {args.threads} thread(s), best of {args.rounds} "
          f"alternated rounds, load average {load:.2f}")
    print("| generator | parameters | torch | onnxruntime |")
    print("|---|---|---|---|")
    for name in names:
        print(f"| {name} | {params[name] / 1e6:.2f} M | {best[name]['torch']:.1f}x | "
              f"{best[name]['onnx']:.1f}x |")
    if args.json:
        args.json.write_text(json.dumps({"load": load, "threads": args.threads,
                                         "params": params, "speed": best}, indent=1))


if __name__ == "__main__":
    main()
