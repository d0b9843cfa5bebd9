"""Building a voice folder from a trained acoustic model and HiFi-GAN generator.

The models are loaded and checked (symbol table, one mel front end), scored on the held-out
recordings unless their evaluation is given (vocoder copy-synthesis PESQ-wb, acoustic boundary
error against the corpus's phone labels), held to the shipping gate, exported to ONNX and
checked against torch, and written with the held-out ids, the corpus's licence notice, the
metrics and a README with provenance into a staging folder that replaces the voice folder
only when complete.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vestnik.acoustic import symbols
from vestnik.acoustic.checkpoint import load_acoustic, mel_differences, mel_settings
from vestnik.corpus import METADATA_NAME
from vestnik.corpus.festvox import NOTICE_NAME
from vestnik.errors import VestnikError
from vestnik.io import read_tsv, write_json, write_text
from vestnik.provenance import sha256_file
from vestnik.training import read_torch_file, save_atomic
from vestnik.vocoder.checkpoint import load_generator
from vestnik.voice import onnx_export
from vestnik.voice.package import (
    FILES,
    FORMAT,
    MANIFEST,
    MAX_FILE_BYTES,
    file_records,
    read_voice,
    shipping_gate,
)

log = logging.getLogger("vestnik.voice")

ONNX_TOLERANCE = 1e-3
"""Largest difference allowed between a graph's outputs and the torch model's."""
CHECK_TEXT = "Старый з+амок стоял на горе, и в его окнах горел свет."


def _short_hash(path: Path) -> str:
    return sha256_file(path)[:16]


def _weights_file(source: Path, target: Path, key: str) -> dict[str, Any]:
    """Copy a model file into the voice; one over MAX_FILE_BYTES is rewritten with its weight
    matrices in fp16 (loading casts them back to float32). Returns how it was stored."""
    if source.stat().st_size <= MAX_FILE_BYTES:
        shutil.copyfile(source, target)
        return {"dtype": "float32"}
    data = dict(read_torch_file(source, "model file"))
    data[key] = {name: value.half() if value.is_floating_point() and value.dim() >= 2 else value
                 for name, value in data[key].items()}
    data["stored_as"] = "float16"
    save_atomic(target, data)
    if target.stat().st_size > MAX_FILE_BYTES:
        raise VestnikError(f"{target.name} is {target.stat().st_size / 1e6:.1f} MB even in "
                           f"fp16, over the {MAX_FILE_BYTES / 1e6:.0f} MB a voice file may be: "
                           "train a smaller model", path=source)
    return {"dtype": "float16"}


def held_out_ids(val_tsv: Path, train_tsv: Path | None) -> list[str]:
    """The validation split's corpus ids; refuses ids that the training split also holds."""
    ids = [row["id"] for row in read_tsv(val_tsv)]
    if not ids:
        raise VestnikError("the validation split is empty: no held-out recordings",
                           path=val_tsv)
    if train_tsv is not None and train_tsv.is_file():
        shared = sorted(set(ids) & {row["id"] for row in read_tsv(train_tsv)})
        if shared:
            raise VestnikError(f"{len(shared)} held-out ids are also in the training split "
                               f"({', '.join(shared[:5])})", path=val_tsv)
    return ids


def evaluate(acoustic: Path, generator: Path, val_tsv: Path, corpus_root: Path,
             clean: Any = None, limit: int | None = None, device: str = "cpu") -> dict:
    """{"vocoder": summary, "acoustic": summary} on the held-out recordings (the workflow's
    own evaluations, vestnik.vocoder.evaluate and vestnik.acoustic.evaluate)."""
    from vestnik.acoustic.evaluate import evaluate_acoustic
    from vestnik.vocoder.evaluate import evaluate_vocoder

    with tempfile.TemporaryDirectory(prefix="voice-eval-") as tmp:
        vocoder = evaluate_vocoder(generator, val_tsv, Path(tmp) / "vocoder", limit=limit,
                                   plots=1, device=device)
        model = evaluate_acoustic(acoustic, val_tsv, Path(tmp) / "acoustic", corpus_root,
                                  clean, limit=limit, device=device)
    return {"vocoder": vocoder, "acoustic": model}


def check_graphs(folder: Path, acoustic_path: Path, generator_path: Path,
                 text: str = CHECK_TEXT) -> dict[str, float]:
    """Largest absolute difference of each graph's outputs from the torch models' on `text`
    (same durations for both); refuses a difference over ONNX_TOLERANCE."""
    from vestnik.acoustic.speak import frame_counts
    from vestnik.text.normalize import normalize
    from vestnik.tts.voice import OnnxVoice

    model, _ = load_acoustic(acoustic_path)
    generator, _ = load_generator(generator_path)
    voice = OnnxVoice(folder, threads=1)
    ids = symbols.text_tokens(normalize(text, stress=True)).ids
    model_ids = symbols.intersperse(ids) if voice.add_blank else ids
    hidden, mu, logw = voice.encode(model_ids)
    durations = frame_counts(logw, 1.0)
    onnx_mel = voice.decode(hidden, mu, durations)
    tokens = torch.tensor([model_ids])
    with torch.inference_mode():
        _, _, torch_logw, _ = model.encode(tokens, torch.tensor([len(model_ids)]))
        torch_mel, _, _ = model.infer(tokens, durations=torch.from_numpy(durations)[None])
        torch_audio = generator(torch_mel).reshape(-1).numpy()
    onnx_audio = voice.generate(torch_mel[0].numpy())
    differences = {
        "log_durations": float(np.abs(torch_logw[0].numpy() - logw).max()),
        "mel": float(np.abs(torch_mel[0].numpy() - onnx_mel).max()),
        "audio": float(np.abs(torch_audio - onnx_audio).max()),
    }
    bad = {key: value for key, value in differences.items() if not value <= ONNX_TOLERANCE}
    if bad:
        raise VestnikError("the ONNX graphs do not reproduce the torch models: " + ", ".join(
            f"{key} differs by {value:.2e}" for key, value in bad.items()), path=folder)
    return differences


def _readme(name: str, manifest: Mapping[str, Any], metrics: Mapping[str, Any],
            notice: str) -> str:
    gate = manifest["gate"]
    vocoder, acoustic = metrics["vocoder"], metrics["acoustic"]
    prov = manifest["provenance"]

    def figure(value: Any, digits: int = 3) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    status = ("passes the shipping gate" if gate["passed"] else
              "**NOT SHIPPABLE** (built past the gate on request): " + "; ".join(gate["problems"]))
    lines = [
        f"# Voice `{name}`",
        "",
        f"A Russian neural voice for Vestnik's `voice` TTS engine ({status}). Use it with",
        "",
        "```yaml",
        "tts:",
        "  engine: voice",
        f"  voice: {{path: resources/voices/{name}}}",
        "```",
        "",
        "(`engine: neural` with `acoustic: .../acoustic.pt` and `vocoder: .../generator.pt`",
        "runs the same networks in torch). Every file is listed with its SHA-256 in voice.json.",
        "",
        "## Held-out metrics",
        "",
        f"On {vocoder.get('utterances')} of the {manifest['held_out']} held-out recordings of "
        "`val_ids.txt` (corpus ids, never trained on); bars from `vestnik.voice.package`:",
        "",
        "| measure | value | bar |",
        "|---|---|---|",
        f"| vocoder copy-synthesis PESQ-wb | {figure(vocoder.get('pesq_wb'))} | "
        f">= {gate['bars']['pesq_wb_min']} |",
        f"| vocoder STOI | {figure(vocoder.get('stoi'))} | |",
        f"| vocoder mel L1 | {figure(vocoder.get('mel_l1'))} | |",
        f"| vocoder MCD (dB) | {figure(vocoder.get('mcd_db'), 2)} | |",
        f"| acoustic boundary error (ms, median) | {figure(acoustic.get('boundary_error_ms'), 1)}"
        f" | <= {gate['bars']['boundary_error_max_ms']:.0f} |",
        f"| acoustic MCD (dB, free-running, DTW) | {figure(acoustic.get('mcd_db'), 2)} | |",
        f"| acoustic length error | {figure(acoustic.get('length_error'))} | |",
        "",
        "## Provenance",
        "",
        f"- built {manifest['created']} by `vestnik voice export`",
        f"- acoustic model: experiment `{prov['acoustic']['experiment']}`, state "
        f"`{prov['acoustic']['state']}`, step {prov['acoustic']['step']} of "
        f"{prov['acoustic']['steps']}, {prov['acoustic']['parameters']:,} parameters",
        f"- generator: experiment `{prov['vocoder']['experiment']}`, state "
        f"`{prov['vocoder']['state']}`, step {prov['vocoder']['step']} of "
        f"{prov['vocoder']['steps']}, {prov['vocoder']['parameters']:,} parameters",
        f"- config: {prov.get('config') or 'n/a'} (SHA-256 {prov.get('config_sha256') or 'n/a'})",
        f"- corpus: {prov['corpus']['root']} (metadata SHA-256 "
        f"{prov['corpus']['metadata_sha256']}, split train {prov['corpus']['train_sha256']} / "
        f"val {prov['corpus']['val_sha256']})",
        f"- trained on: {prov.get('trained_on') or 'n/a'}",
        f"- training wall time: {prov.get('wall_time') or 'n/a'}",
        "",
        "## Licence of the training corpus",
        "",
        "The networks were trained on the recordings and transcripts below; their notice is",
        "kept in COPYRIGHT beside the weights and must travel with them:",
        "",
        "```",
        notice.strip()[:1500],
        "```",
        "",
    ]
    return "\n".join(lines)


def _model_record(meta: Mapping[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    return {key: meta.get(key) for key in ("experiment", "state", "step", "steps")} | {
        "parameters": sum(p.numel() for p in model.parameters())}


def build_voice(
    out: str | os.PathLike,
    *,
    acoustic: str | os.PathLike,
    generator: str | os.PathLike,
    val_tsv: str | os.PathLike,
    corpus_root: str | os.PathLike,
    train_tsv: str | os.PathLike | None = None,
    metrics: Mapping[str, Any] | None = None,
    clean: Any = None,
    force: bool = False,
    limit: int | None = None,
    config: str | os.PathLike | None = None,
    trained_on: str | None = None,
    wall_time: str | None = None,
) -> Path:
    """Write the voice folder `out` (its name is the voice's) and return it.

    `metrics` ({"vocoder": ..., "acoustic": ...} evaluation summaries) skips the evaluation;
    `force` builds a voice under the shipping bar, marked unshippable (tests, trials).
    """
    out = Path(out)
    acoustic, generator = Path(acoustic), Path(generator)
    val_tsv, corpus_root = Path(val_tsv), Path(corpus_root)
    train_tsv = Path(train_tsv) if train_tsv else val_tsv.with_name("train.tsv")
    model, acoustic_meta = load_acoustic(acoustic)
    vocoder, vocoder_meta = load_generator(generator)
    problems = mel_differences(acoustic_meta["mel"], vocoder_meta.get("mel") or mel_settings())
    if problems:
        raise VestnikError(f"acoustic model {acoustic} and generator use different mel "
                           "settings: " + "; ".join(problems), path=generator)
    ids = held_out_ids(val_tsv, train_tsv)
    notice = corpus_root / NOTICE_NAME
    if not notice.is_file():
        raise VestnikError("the corpus has no licence notice to ship with the voice",
                           path=notice)
    if metrics is None:
        metrics = evaluate(acoustic, generator, val_tsv, corpus_root, clean, limit)
    gate = shipping_gate(metrics, force=force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        stored = {"acoustic.pt": _weights_file(acoustic, staging / "acoustic.pt", "model"),
                  "generator.pt": _weights_file(generator, staging / "generator.pt",
                                                "generator")}
        onnx_export.export_acoustic(model, staging)
        onnx_export.export_generator(vocoder, staging)
        for name in ("encoder.onnx", "decoder.onnx", "generator.onnx"):
            size = (staging / name).stat().st_size
            if size > MAX_FILE_BYTES:
                raise VestnikError(f"{name} is {size / 1e6:.1f} MB, over the "
                                   f"{MAX_FILE_BYTES / 1e6:.0f} MB a voice file may be: "
                                   "train a smaller model", path=acoustic)
        write_text(staging / "val_ids.txt", "\n".join(ids) + "\n")
        shutil.copyfile(notice, staging / "COPYRIGHT")
        write_json(staging / "metrics.json", {**dict(metrics), "gate": gate})
        metadata = corpus_root / METADATA_NAME
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "name": out.name,
            "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "symbols": symbols.table_record(),
            "mel": mel_settings(),
            "add_blank": bool(model.config["add_blank"]),
            "held_out": len(ids),
            "acoustic_config": dict(model.config),
            "generator_config": dict(vocoder.config),
            "stored": stored,
            "gate": gate,
            "provenance": {
                "acoustic": _model_record(acoustic_meta, model),
                "vocoder": _model_record(vocoder_meta, vocoder),
                "config": str(config) if config else None,
                "config_sha256": _short_hash(Path(config)) if config else None,
                "corpus": {
                    "root": str(corpus_root),
                    "metadata_sha256": _short_hash(metadata) if metadata.is_file() else None,
                    "train_sha256": _short_hash(train_tsv) if train_tsv.is_file() else None,
                    "val_sha256": _short_hash(val_tsv),
                },
                "trained_on": trained_on,
                "wall_time": wall_time,
            },
        }
        write_text(staging / "README.md", _readme(out.name, manifest, metrics,
                                                  notice.read_text(errors="replace")))
        manifest["files"] = file_records(staging, FILES)
        write_json(staging / MANIFEST, manifest)
        read_voice(staging)
        manifest["onnx_max_difference"] = check_graphs(staging, acoustic, generator)
        write_json(staging / MANIFEST, manifest)
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("voice %s written to %s (%s)", out.name, out,
             "shippable" if gate["passed"] else "forced: " + "; ".join(gate["problems"]))
    return out


def _replace(staging: Path, out: Path) -> None:
    """Put the finished folder in place of `out` (any earlier voice is removed after)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{hashlib.sha1(os.urandom(8)).hexdigest()[:8]}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def metrics_from_files(vocoder: str | os.PathLike, acoustic: str | os.PathLike) -> dict:
    """{"vocoder", "acoustic"} summaries from the evaluation rules' metrics.json files."""
    result = {}
    for key, path in (("vocoder", Path(vocoder)), ("acoustic", Path(acoustic))):
        try:
            result[key] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise VestnikError(f"cannot read the {key} evaluation ({exc})", path=path) from exc
    return result
