"""Where an acoustic checkpoint's utterance-length error comes from: signed against absolute, and
by kind of token.

For each utterance of a split, the model's own durations (as `infer` speaks) are compared with
the alignment training uses (MAS under the same checkpoint's prior), summed over pause tokens
(clause punctuation, with the blanks on either side), the utterance's two edge blanks, and the
rest (phones, word gaps, the blanks between them). A mean signed error as large as the absolute
one is a bias of the duration loss, not noise; `bench/real_speech.md` has the figures.

Usage:  python bench/duration_bias.py STEP [STEP...] [--checkpoints DIR] [--split val|train]
                                         [--limit N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("pauses", "edges", "rest")


def _kind(ids: list[int], k: int) -> str:
    from vestnik.acoustic import symbols

    def pause(j: int) -> bool:
        return 0 <= j < len(ids) and symbols.is_pause(symbols.SYMBOLS[ids[j]])

    if symbols.SYMBOLS[ids[k]] == symbols.BLANK and k in (0, len(ids) - 1):
        return "edges"
    if pause(k) or (symbols.SYMBOLS[ids[k]] == symbols.BLANK and (pause(k - 1) or pause(k + 1))):
        return "pauses"
    return "rest"


def measure(checkpoint: Path, split: Path, limit: int | None) -> dict:
    """Signed and absolute length errors and frames by token kind (MAS, predicted)."""
    from vestnik.acoustic import symbols
    from vestnik.acoustic.config import resolve_experiment
    from vestnik.acoustic.data import text_ids
    from vestnik.acoustic.model import AcousticModel
    from vestnik.io import read_tsv
    from vestnik.training import load_state

    recipe = yaml.safe_load((ROOT / "config" / "real-speech.yaml").read_text(encoding="utf-8"))
    config = resolve_experiment("real", recipe["acoustic"]["experiments"]["real"])
    model = AcousticModel(len(symbols.SYMBOLS), config["model"])
    model.load_state_dict(load_state(checkpoint)["model"])
    model.eval()
    errors, frames = [], {kind: [0, 0] for kind in KINDS}
    for row in read_tsv(split)[: limit or None]:
        ids, _ = text_ids(row["text"], bool(model.config["add_blank"]))
        mel = np.load(ROOT / row["mel"], allow_pickle=False)[:, : int(row["frames"])]
        batch, lengths = torch.tensor([ids]), torch.tensor([len(ids)])
        with torch.inference_mode():
            forced = model(batch, lengths, torch.from_numpy(mel[None].astype(np.float32)),
                           torch.tensor([mel.shape[1]]))
            _, spoken, _ = model.infer(batch, lengths)
        aligned = forced["durations"][0].tolist()
        for k, (truth, predicted) in enumerate(zip(aligned, spoken[0].tolist(), strict=True)):
            frames[_kind(ids, k)][0] += truth
            frames[_kind(ids, k)][1] += predicted
        errors.append((sum(spoken[0].tolist()) - mel.shape[1]) / mel.shape[1])
    signed = np.array(errors)
    total = sum(aligned for aligned, _ in frames.values())
    return {
        "utterances": len(errors),
        "length_error": float(np.abs(signed).mean()),
        "signed": float(signed.mean()),
        "spread": float(np.abs(signed - signed.mean()).mean()),
        **{f"{kind}_share": frames[kind][0] / total for kind in KINDS},
        **{f"{kind}_signed": (frames[kind][1] - frames[kind][0]) / total for kind in KINDS},
        **{f"{kind}_ratio": frames[kind][1] / max(frames[kind][0], 1) for kind in KINDS},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("steps", type=int, nargs="+")
    parser.add_argument("--checkpoints", type=Path,
                        default=ROOT / "results" / "models" / "acoustic" / "real" / "checkpoints")
    parser.add_argument("--split", choices=("val", "train"), default="val")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    split = ROOT / "results" / "data" / "ruslan" / f"{args.split}.tsv"
    print("| step | length error | mean signed | spread | pauses: share, predicted/aligned, "
          "signed | rest: predicted/aligned, signed | edges: predicted/aligned |")
    print("|---:|---:|---:|---:|---|---|---|")
    for step in args.steps:
        m = measure(args.checkpoints / f"step_{step:09d}.pt", split, args.limit)
        print(f"| {step} | {m['length_error']:.1%} | {m['signed']:+.1%} | {m['spread']:.1%} | "
              f"{m['pauses_share']:.1%}, {m['pauses_ratio']:.2f}, {m['pauses_signed']:+.1%} | "
              f"{m['rest_ratio']:.2f}, {m['rest_signed']:+.1%} | {m['edges_ratio']:.2f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
