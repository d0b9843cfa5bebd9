"""Where every output lives, relative to the workflow folder: the one place paths are spelled.

Patterns keep Snakemake's wildcards (`{job}`, `{i}`, `{name}`, `{shard}`), so the rules use
them as they are and Python code fills them with `str.format`. Steps receive the declared
output files; they never choose a file name themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

RESULTS = "results"
LOGS = "logs"

JOBS_DIR = f"{RESULTS}/jobs"
JOB = f"{JOBS_DIR}/{{job}}"
SPEECH_WAV = f"{JOB}/speech.wav"
SPEECH_JSON = f"{JOB}/speech.json"
REVOICE = f"{JOB}/revoice"
REVOICE_PLAN = f"{REVOICE}/plan.json"
"""A re-voicing job's pieces (spans of the recording and of the transcript), its transcript's
symbols and sentences, and the alignment's worst fit (vestnik.revoice)."""
REVOICE_RECORDING = f"{REVOICE}/recording.wav"
"""The recording at 22,050 Hz, brought to the corpus's peak level: what every piece reads."""
REVOICE_PIECE_WAV = f"{REVOICE}/pieces/{{i}}.wav"
REVOICE_PIECE_JSON = f"{REVOICE}/pieces/{{i}}.json"
"""One re-voiced piece: its audio (the recording's samples of its span) and symbol frames."""
CHUNK_PLAN = f"{JOB}/chunks.tsv"
CHUNK_VIDEO = f"{JOB}/chunks/{{i}}.mp4"
CHUNK_TIMING = f"{JOB}/chunks/{{i}}.json"
RENDER_GATE = f"{JOB}/chunks/gate"
"""Marker of a job's render gate: a job holding a core per chunk for an instant, so that its
chunk renders start together on cores freed at once (vestnik.priorities)."""
FINAL_VIDEO = f"{JOB}/final.mp4"
PROVENANCE = f"{JOB}/provenance.json"
STATS = f"{JOB}/stats.json"
AVATAR_FACES = f"{RESULTS}/avatars/{{avatar}}/faces_{{model}}.json"
"""Face boxes and landmarks of one avatar for one landmark model, read by every chunk of every
job showing it; `avatar` is vestnik.lipsync.face.avatar_slug of the avatar's path."""
AVATAR_FACES_LOG = f"{LOGS}/avatars/{{avatar}}/faces_{{model}}.log"
JOB_BENCHMARK = f"{JOB}/benchmarks/{{stage}}.tsv"
"""Per-stage benchmark of a job: stage is tts, plan, merge, lipsync_{i}, and for a re-voicing
job revoice_plan and revoice_{i}."""
JOB_LOG = f"{LOGS}/jobs/{{job}}/{{step}}.log"
"""Per-step log of a job: step is the rule name, with `_{i}` for per-chunk rules."""
DATA_LOG = f"{LOGS}/data/{{step}}.log"
MODEL_LOG = f"{LOGS}/{{kind}}/{{name}}/{{step}}.log"
"""Per-step log of a training experiment: kind is vocoder or acoustic."""
REPORT_LOG = f"{LOGS}/report/{{step}}.log"

REPORT = f"{RESULTS}/report"
RUN_BENCHMARKS = f"{REPORT}/benchmarks.tsv"
RUNTIME_CHART = f"{REPORT}/runtime_memory.png"
RULES_TABLE = f"{REPORT}/rules.html"
JOBS_TABLE = f"{REPORT}/jobs.html"
GALLERY = f"{REPORT}/videos.html"

DATA = f"{RESULTS}/data"
ESPEAK_CORPUS = f"{DATA}/espeak_corpus"
FESTVOX_CORPUS = f"{DATA}/festvox_ru"
FESTVOX_DOWNLOAD = f"{DATA}/festvox_ru_download"
CORPUS_METADATA_NAME = "metadata_RUSLAN_22200.csv"
CORPUS_WAVS_NAME = "ruslan_dataset"
CORPUS_LABELS_NAME = "labels"
CORPUS = f"{DATA}/ruslan"
CORPUS_SCAN = f"{CORPUS}/scan.tsv"
CORPUS_SHARD = f"{CORPUS}/shards/{{shard}}"
CORPUS_MANIFEST = f"{CORPUS}/manifest.tsv"
CORPUS_REJECTED = f"{CORPUS}/rejected.tsv"
CORPUS_TRAIN = f"{CORPUS}/train.tsv"
CORPUS_VAL = f"{CORPUS}/val.tsv"
CORPUS_SUMMARY = f"{CORPUS}/summary.json"
DATA_BENCHMARK = f"{DATA}/benchmarks/{{step}}.tsv"

MODELS = f"{RESULTS}/models"
VOCODER = f"{MODELS}/vocoder/{{name}}"
VOCODER_GENERATOR = f"{VOCODER}/generator.pt"
VOCODER_PROVENANCE = f"{VOCODER}/provenance.json"
VOCODER_CURVES = f"{VOCODER}/curves.png"
VOCODER_METRICS = f"{VOCODER}/eval/metrics.json"
VOCODER_METRICS_TABLE = f"{VOCODER}/eval/metrics.tsv"
VOCODER_SPECTROGRAMS = f"{VOCODER}/eval/spectrograms.png"
VOCODER_REPORT = f"{VOCODER}/report/validation.html"
VOCODER_TRAIN_LOG = f"{VOCODER}/report/train_log.csv"
ACOUSTIC = f"{MODELS}/acoustic/{{name}}"
ACOUSTIC_MODEL = f"{ACOUSTIC}/model.pt"
ACOUSTIC_PROVENANCE = f"{ACOUSTIC}/provenance.json"
ACOUSTIC_CURVES = f"{ACOUSTIC}/curves.png"
ACOUSTIC_METRICS = f"{ACOUSTIC}/eval/metrics.json"
ACOUSTIC_METRICS_TABLE = f"{ACOUSTIC}/eval/metrics.tsv"
ACOUSTIC_REPORT = f"{ACOUSTIC}/report/validation.html"
ACOUSTIC_TRAIN_LOG = f"{ACOUSTIC}/report/train_log.csv"
MODEL_BENCHMARK = f"{MODELS}/benchmarks/{{kind}}_{{name}}_{{step}}.tsv"

CORPUS_FILES = {
    "manifest": CORPUS_MANIFEST, "rejected": CORPUS_REJECTED, "train": CORPUS_TRAIN,
    "val": CORPUS_VAL, "summary": CORPUS_SUMMARY,
}
"""The corpus split's outputs, by the rule's output names."""
VOCODER_EVAL_FILES = {
    "metrics": VOCODER_METRICS, "table": VOCODER_METRICS_TABLE, "plot": VOCODER_SPECTROGRAMS,
}
"""The vocoder evaluation's outputs, by the rule's output names."""
ACOUSTIC_EVAL_FILES = {"metrics": ACOUSTIC_METRICS, "table": ACOUSTIC_METRICS_TABLE}
"""The acoustic evaluation's outputs, by the rule's output names."""

EXPERIMENT_OUTPUTS = {
    "vocoder": (VOCODER_GENERATOR, VOCODER_METRICS),
    "acoustic": (ACOUSTIC_MODEL, ACOUSTIC_METRICS),
}
"""Final outputs of each experiment kind (config block `<kind>.experiments`)."""
TRAINED_MODEL = {"vocoder": VOCODER_GENERATOR, "acoustic": ACOUSTIC_MODEL}
"""The file a trained experiment of each kind is used through."""

ERROR_RECORD = "*.error.json"
"""Glob of the records failed steps write beside their first output (see vestnik.runner)."""


def outputs(declared: str | Path | Mapping[str, str | Path], names: Mapping[str, str]) -> dict:
    """{key: Path} of a step's files: the rule's declared outputs (a mapping with those keys),
    or, for a call outside the workflow, a folder and the layout's file names (`names`)."""
    if isinstance(declared, Mapping):
        return {key: Path(declared[key]) for key in names}
    return {key: Path(declared) / Path(pattern).name for key, pattern in names.items()}


def fill(pattern: str, **values: object) -> str:
    """`pattern` with the named wildcards filled in and any others left for Snakemake."""
    for key, value in values.items():
        pattern = pattern.replace("{" + key + "}", str(value))
    return pattern


def job_path(pattern: str, job: str, **wildcards: object) -> str:
    """`pattern` filled for one job (and any other wildcards it has)."""
    return fill(pattern, job=job, **wildcards)


def error_record(output: str | Path) -> Path:
    """The error record of the step whose first output is `output`: `<its stem>.error.json`
    beside it (`speech.error.json`, `chunks/3.error.json`), one per step, so steps failing side
    by side never share a record."""
    output = Path(output)
    return output.parent / f"{output.stem}.error.json"


def is_error_record(path: str | Path) -> bool:
    return Path(path).name.endswith(".error.json")
