"""Held-out evaluation of an acoustic model against the real recordings of the validation set.

Per utterance: the model speaks the transcript on its own (predicted durations), and its mel is
compared with the recording's: mel-cepstral distortion along a DTW path (`mcd_db`) and the
relative length error (`length_error`). The model's monotonic alignment of the transcript to
the recording (the one training uses) gives phone start times; where the corpus has human
phone labels (`labels/<id>.lab`, festvox-ru), the median absolute difference of matching
phone starts is `boundary_error_ms`. Teacher-forced mel L1 (`mel_l1`) completes the set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vestnik import layout
from vestnik.acoustic import symbols
from vestnik.corpus import LABEL_DIR, WAV_DIR
from vestnik.io import read_tsv
from vestnik.mel import HOP, SAMPLE_RATE
from vestnik.speech_metrics import boundary_errors, mel_cepstral_distortion, write_evaluation

log = logging.getLogger("vestnik.acoustic")

METRIC_FIELDS = ("id", "seconds", "mel_l1", "mcd_db", "length_error", "boundary_error_ms",
                 "boundary_pairs")
FRAME_SECONDS = HOP / SAMPLE_RATE


def _token_starts(tokens: list[str], durations: list[int], offset: float) -> tuple[list, list]:
    """Phone and pause tokens (word gaps dropped) and their start times in seconds."""
    kept, starts, frame = [], [], 0
    for token, count in zip(tokens, durations, strict=True):
        if token != symbols.SPACE:
            kept.append(token)
            starts.append(offset + frame * FRAME_SECONDS)
        frame += count
    return kept, starts


def evaluate_acoustic(
    model_path: str | os.PathLike,
    val_tsv: str | os.PathLike,
    out: str | os.PathLike | Mapping[str, str | os.PathLike],
    corpus_root: str | os.PathLike | None = None,
    clean: Any = None,
    limit: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score the model on the validation split; writes the metrics table and summary.

    `out` is the rule's declared outputs (keys of vestnik.layout.ACOUSTIC_EVAL_FILES), or a
    folder that gets the layout's file names.
    """
    from vestnik.acoustic.checkpoint import load_acoustic
    from vestnik.acoustic.data import text_ids
    from vestnik.acoustic.speak import fold_blanks as _fold_blanks
    from vestnik.corpus.festvox import read_labels
    from vestnik.corpus.preprocess import CleanSettings, trim_offset

    files = layout.outputs(out, layout.ACOUSTIC_EVAL_FILES)
    model, _ = load_acoustic(model_path, device)
    add_blank = bool(model.config["add_blank"])
    settings = clean if clean is not None else CleanSettings.from_config()
    rows, all_errors = [], []
    for row in read_tsv(val_tsv)[: limit or None]:
        ids, tokens = text_ids(row["text"], add_blank)
        if not tokens.symbols:
            continue
        mel = np.load(row["mel"], allow_pickle=False)[:, : int(row["frames"])]
        frames = mel.shape[1]
        batch = torch.tensor([ids], dtype=torch.long, device=device)
        lengths = torch.tensor([len(ids)], device=device)
        mels = torch.from_numpy(mel[None].astype(np.float32)).to(device)
        with torch.inference_mode():
            forced = model(batch, lengths, mels, torch.tensor([frames], device=device))
            free, _, free_lengths = model.infer(batch, lengths)
        predicted = free[0, :, : int(free_lengths[0])].float().cpu().numpy()
        result = {
            "id": row["id"],
            "seconds": round(frames * FRAME_SECONDS, 3),
            "mel_l1": float(forced["mel_l1"]),
            "mcd_db": mel_cepstral_distortion(mel, predicted, align=True),
            "length_error": abs(predicted.shape[1] - frames) / frames,
            "boundary_error_ms": None,
            "boundary_pairs": 0,
        }
        label_path = Path(corpus_root) / LABEL_DIR / f"{row['id']}.lab" if corpus_root else None
        if label_path is not None and label_path.is_file():
            offset = trim_offset(Path(corpus_root) / WAV_DIR / f"{row['id']}.wav", settings)
            durations = _fold_blanks(forced["durations"][0].cpu().tolist(), add_blank)
            kept, starts = _token_starts(tokens.symbols, durations, offset)
            errors = boundary_errors(kept, starts, read_labels(label_path))
            if errors:
                result["boundary_error_ms"] = 1000 * float(np.median(errors))
                result["boundary_pairs"] = len(errors)
                all_errors += errors
        rows.append(result)
    head = {
        "model": str(model_path),
        "boundary_error_ms": round(1000 * float(np.median(all_errors)), 2) if all_errors else None,
        "boundary_pairs": len(all_errors),
    }
    summary = write_evaluation(files, METRIC_FIELDS, rows, head,
                               ("mel_l1", "mcd_db", "length_error"))
    log.info("evaluated %s on %d utterances: %s", model_path, len(rows), summary)
    return summary
