# Helpers shared by every .smk file: job lookup and per-job settings.
from pathlib import Path
from types import SimpleNamespace

from vestnik.config import job_input, merged_settings
from vestnik.provenance import job_provenance_inputs

JOBS = sorted(config["jobs"])
FPS = config["fps"]


def settings(wildcards):
    """The job's defaults merged with its overrides (checked by the job itself)."""
    return merged_settings(config, wildcards.job)


def existing(path):
    """A path as an input only if it exists: a missing file fails its own job, not the run."""
    return [path] if path and Path(path).exists() else []


def avatar_input(wildcards):
    return existing(settings(wildcards)["avatar"])


def speech_inputs(wildcards):
    kind, value = job_input(config, wildcards.job)
    inputs = {"avatar": avatar_input(wildcards)}
    if kind in ("text_file", "audio"):
        inputs["source"] = existing(value)
    inputs.update(neural_tts_models(wildcards))
    return inputs


def neural_tts_models(wildcards):
    """Model files of a `neural` TTS job: an experiment defined in the config is trained by the
    workflow; a file path counts only if it exists (a missing file fails its own job)."""
    tts = settings(wildcards).get("tts") or {}
    if tts.get("engine") != "neural":
        return {}
    from vestnik.tts.neural import model_paths, trained_experiments

    neural = tts.get("neural") or {}
    named = trained_experiments(neural)
    inputs = {}
    for kind, path in zip(("acoustic", "vocoder"), model_paths(neural)):
        defined = named.get(kind) in config.get(kind, {}).get("experiments", {})
        inputs[f"{kind}_model"] = [path] if defined else existing(path)
    return inputs


def tts_gpu(wildcards):
    """Neural TTS takes a GPU slot unless its settings pin it to the CPU."""
    tts = settings(wildcards)["tts"]
    neural = tts.get("neural") or {}
    return 1 if tts["engine"] == "neural" and neural.get("device", "auto") != "cpu" else 0


def lipsync_gpu(wildcards):
    """GPU engines take one slot of `--resources gpu=N`; CPU engines take none."""
    return 1 if settings(wildcards)["lipsync"]["engine"] == "wav2lip" else 0


def lipsync_model(wildcards):
    """The Wav2Lip checkpoint as an input of wav2lip jobs (only if it exists; see `existing`)."""
    lipsync = settings(wildcards)["lipsync"]
    if lipsync["engine"] != "wav2lip":
        return []
    return existing(lipsync.get("wav2lip", {}).get("checkpoint"))


def planned_chunks(wildcards):
    plan = checkpoints.plan_chunks.get(job=wildcards.job).output[0]
    from vestnik.chunks import read_plan

    return [c.chunk for c in read_plan(plan)]


def chunk_videos(wildcards):
    return expand("results/jobs/{job}/chunks/{i}.mp4", job=wildcards.job, i=planned_chunks(wildcards))


def every_chunk_video(wildcards):
    """Chunk videos of every job, as targets of `all`: Snakemake does not rebuild a missing
    intermediate file while the outputs made from it are up to date, so a deleted chunk would
    otherwise stay missing."""
    return [video for job in JOBS for video in chunk_videos(SimpleNamespace(job=job))]


def chunk_timings(wildcards):
    return expand("results/jobs/{job}/chunks/{i}.json", job=wildcards.job, i=planned_chunks(wildcards))


def chunk_benchmarks(stage):
    def inputs(wildcards):
        pattern = f"results/jobs/{{job}}/benchmarks/{stage}_{{i}}.tsv"
        return expand(pattern, job=wildcards.job, i=planned_chunks(wildcards))

    return inputs
