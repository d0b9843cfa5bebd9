"""`vestnik vocode`: mel features (.npy) or a recording in, HiFi-GAN waveform out.

A recording is first turned into features with the shared mel front end, which makes the command
a copy-synthesis check of a vocoder; a .npy file holds features (80, frames) such as an acoustic
model writes. Works with exported `generator.pt` files and official HiFi-GAN checkpoints alike.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from vestnik.errors import VestnikError

log = logging.getLogger("vestnik.vocoder")


def read_features(path: Path) -> np.ndarray:
    """(80, frames) float32 log-mel from a .npy file or from any audio file."""
    from vestnik import media
    from vestnik.mel import N_MELS, SAMPLE_RATE, log_mel

    if path.suffix.lower() == ".npy":
        try:
            mel = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise VestnikError(f"cannot read mel features ({exc})", path=path) from exc
        mel = np.squeeze(mel)
        if mel.ndim != 2 or N_MELS not in mel.shape:
            raise VestnikError(f"expected mel features of shape (80, frames), got {mel.shape}",
                               path=path)
        return np.ascontiguousarray(mel if mel.shape[0] == N_MELS else mel.T, dtype=np.float32)
    return log_mel(media.read_audio(path, SAMPLE_RATE))


def vocode_file(
    generator: str, source: str, out: str, arch: str | None = None, device: str = "auto"
) -> float:
    """Vocode `source` (.npy mel or audio) with `generator` into the wav `out`; returns seconds."""
    import torch

    from vestnik import media
    from vestnik.mel import SAMPLE_RATE
    from vestnik.training import choose_device
    from vestnik.vocoder.checkpoint import load_generator

    mel = read_features(Path(source))
    torch_device = choose_device(device)
    model, _meta = load_generator(generator, spec=arch, device=torch_device)
    with torch.inference_mode():
        audio = model(torch.from_numpy(mel[None]).to(torch_device)).squeeze().float().cpu().numpy()
    media.write_wav(out, audio, SAMPLE_RATE)
    return audio.size / SAMPLE_RATE


def cmd_vocode(args: argparse.Namespace) -> None:
    seconds = vocode_file(args.generator, args.input, args.out, args.arch, args.device)
    print(f"{args.out} ({seconds:.2f} s)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "vocode", help="HiFi-GAN: mel (.npy) or audio in, 22,050 Hz wav out",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("input", help="mel features (.npy, 80 x frames) or an audio file")
    parser.add_argument("--generator", required=True,
                        help="generator.pt of an experiment, or an official HiFi-GAN g_* file")
    parser.add_argument("--arch", default=None, choices=("v1", "v2", "v3"),
                        help="generator of an official file (default: config.json beside it, "
                        "else detected from the weight shapes)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--out", required=True, help="output wav")
    parser.set_defaults(func=cmd_vocode)
