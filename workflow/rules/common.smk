# Helpers shared by every .smk file: output paths, per-job settings, and what each step reads.
# Paths come from vestnik.layout, engines from vestnik.engines. A job whose entry or settings do
# not fit the schema gets no inputs or params here; its tts step fails with the schema's message,
# so one bad job never stops the others.
import functools
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from vestnik import engines, layout
from vestnik.config import check_job, job_input, job_transcript, step_settings
from vestnik.errors import VestnikError
from vestnik.layout import fill
from vestnik.priorities import faces_priority, stage_priority
from vestnik.provenance import job_provenance_inputs
from vestnik.shellstep import run_local

JOBS = sorted(config["jobs"])
FPS = config["fps"]


@functools.cache
def job_verdict(job):
    """(settings, None) with the job's checked settings (defaults filled in), or (None, the
    schema's message) when its entry or settings do not fit."""
    try:
        return check_job(config, job), None
    except VestnikError as error:
        return None, str(error)


def checked_settings(job):
    """The job's checked settings (defaults filled in), or None when they do not fit."""
    return job_verdict(job)[0]


for _job in JOBS if workflow.is_main_process else ():  # once, not in every job's process
    if job_verdict(_job)[1]:
        print(f"Vestnik: {job_verdict(_job)[1]}\n(this job fails at its tts step; the others "
              "run)", file=sys.stderr)


def job_priority(stage):
    """Rule priority of one stage of a job (see vestnik.priorities): jobs finish in config
    order (JOB_ORDER, see Snakefile), each job's chunks rendering side by side."""
    return lambda wildcards: stage_priority(JOB_ORDER, wildcards.job, stage)


def existing(path):
    """A path as an input only if it exists: a missing file fails its own job, not the run."""
    return [path] if path and Path(path).exists() else []


def avatar_input(wildcards):
    settings = checked_settings(wildcards.job)
    return existing(settings["avatar"]) if settings else []


def engine_models(kind):
    """Input function: the weights files of the job's `kind` engine, by setting name.

    A file that an experiment defined in the config trains is an input (the workflow trains it);
    any other counts only if it exists (a missing file fails its own job).
    """

    def inputs(wildcards):
        settings = checked_settings(wildcards.job)
        if settings is None:
            return {}
        models = {}
        for key, weight in engines.weight_files(settings, kind).items():
            trained = weight.experiment in config.get(weight.trainer, {}).get("experiments", {})
            models[f"{key}_model"] = [weight.path] if trained else existing(weight.path)
        return models

    return inputs


def device_slots(kind):
    """Resource function: 1 when the job's `kind` engine takes a device slot (`gpu`), else 0."""

    def gpu(wildcards):
        settings = checked_settings(wildcards.job)
        return int(bool(settings) and engines.takes_device_slot(settings, kind))

    return gpu


LIGHT_ENV = "../envs/vestnik.yaml"
TORCH_ENV = "../envs/vestnik-torch.yaml"


def engine_env(kind):
    """Conda environment function: the one with the extra the job's `kind` engine needs."""

    def env(wildcards):
        settings = checked_settings(wildcards.job)
        extra = engines.chosen(settings, kind)[0].extra if settings else None
        return f"../envs/vestnik-{extra}.yaml" if extra else LIGHT_ENV

    return env


def revoicing(job):
    """Whether the job re-voices its recording (audio plus a transcript; vestnik.revoice)."""
    return checked_settings(job) is not None and job_transcript(config, job) is not None


def revoice_inputs(wildcards):
    """The recording, its transcript file (if any) and the voice's model files."""
    inputs = {"avatar": avatar_input(wildcards), **engine_models("tts")(wildcards)}
    if revoicing(wildcards.job):
        inputs["source"] = existing(job_input(config, wildcards.job)[1])
        kind, value = job_transcript(config, wildcards.job)
        if kind == "text_file":
            inputs["transcript"] = existing(value)
    return inputs


def revoiced_pieces(job):
    """(plan, piece wavs, piece records) of a re-voicing job, once its plan is written."""
    from vestnik.revoice import piece_count

    plan = checkpoints.revoice_plan.get(job=job).output.plan
    pieces = range(piece_count(plan))
    return (plan, expand(layout.REVOICE_PIECE_WAV, job=job, i=pieces),
            expand(layout.REVOICE_PIECE_JSON, job=job, i=pieces))


def speech_benchmarks(wildcards):
    """Benchmark files of the job's speech: tts, and a re-voicing job's plan and pieces too
    (their seconds add up to the speech's in stats.json)."""
    files = [fill(layout.JOB_BENCHMARK, job=wildcards.job, stage="tts")]
    if revoicing(wildcards.job):
        pieces = range(len(revoiced_pieces(wildcards.job)[1]))
        files += [fill(layout.JOB_BENCHMARK, job=wildcards.job, stage="revoice_plan")]
        files += [fill(layout.JOB_BENCHMARK, job=wildcards.job, stage=f"revoice_{i}")
                  for i in pieces]
    return files


def speech_slots(wildcards):
    """Device slots of the tts step: none where it only joins a re-voiced recording's pieces."""
    return 0 if revoicing(wildcards.job) else device_slots("tts")(wildcards)


def speech_inputs(wildcards):
    if revoicing(wildcards.job):
        plan, wavs, records = revoiced_pieces(wildcards.job)
        return {"plan": plan, "piece_wavs": wavs, "piece_records": records}
    inputs = {"avatar": avatar_input(wildcards), **engine_models("tts")(wildcards)}
    if checked_settings(wildcards.job) is not None:
        kind, value = job_input(config, wildcards.job)
        if kind in ("text_file", "audio"):
            inputs["source"] = existing(value)
    return inputs


def step_params(step):
    """Params function: only the settings that `step` reads (see vestnik.config.step_settings),
    so a change reruns that step and what follows it, nothing before."""

    def params(wildcards):
        settings = checked_settings(wildcards.job)
        return step_settings(settings, step) if settings else {"invalid": True}

    return params


# The light steps run as `shell:` jobs (vestnik.shellstep). Their command finds its Python (this
# one, or the job's conda environment's) and the `gpu:` block in the environment, not in its
# text: the text of a shell command is its code, and a new checkout's interpreter path or another
# `gpu:` block must not rerun anything.
os.environ.update(
    VESTNIK_PYTHON=(
        "python" if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
        else sys.executable
    ),
    VESTNIK_GPU=json.dumps(config.get("gpu")),
)


def step_shell(*extra):
    """Shell command of a light step: its `call` and `files` params and log, then `extra`
    NAME=JSON arguments that must not rerun the job when they change (its cores)."""
    command = '"$VESTNIK_PYTHON" -m vestnik.shellstep {params.call:q} {params.files:q} {log:q}'
    return " ".join([command, *extra])


def step_call(rule_name, **params):
    """Params function: what a light step reads besides files (vestnik.shellstep), as JSON:
    its rule, the job's wildcards and `params` (values, or functions of the wildcards). One
    param, so a change of any of them reruns the job as separate params would."""

    @functools.cache
    def text(items):
        wildcards = SimpleNamespace(**dict(items))
        values = {name: value(wildcards) if callable(value) else value
                  for name, value in params.items()}
        return json.dumps({"rule": rule_name, "wildcards": dict(items), "params": values},
                          sort_keys=True)

    def call(wildcards):  # once per job: Snakemake asks again for a waiting job after each plan
        return text(tuple(sorted(wildcards.items())))

    return call


def step_files(wildcards, input, output):
    """Params function: a light step's named input and output files, as JSON. Snakemake
    counts a param made from the files as derived: only the files' own changes rerun."""
    return json.dumps({"input": dict(input.items()), "output": dict(output.items())})


def checked_job(wildcards, input, output):
    """Params function of the tts step: the job's checked settings, or why they do not fit, as
    JSON (vestnik.shellstep). The step reads every block of them, but only its own settings
    (`step_params`) rerun it; as a param made from the files, this one is derived and does not."""
    settings, error = job_verdict(wildcards.job)
    return json.dumps({"error": error} if error else {"settings": settings}, sort_keys=True)


def job_source(wildcards):
    return job_input(config, wildcards.job) if checked_settings(wildcards.job) else None


def provenance_record(wildcards):
    return _provenance_record(wildcards.job)


@functools.cache
def _provenance_record(job):
    """Once per job: Snakemake evaluates a waiting merge's params again after every plan."""
    settings = checked_settings(job)
    return job_provenance_inputs(config, job, settings) if settings else None


def planned_chunks(wildcards):
    plan = checkpoints.plan_chunks.get(job=wildcards.job).output.plan
    stat = os.stat(plan)
    return _plan_chunk_numbers(str(plan), stat.st_mtime_ns, stat.st_size)


@functools.cache
def _plan_chunk_numbers(plan, mtime_ns, size):
    """Chunk numbers of a plan file, read once per version of the file: Snakemake asks for
    them again for every job after each plan it writes."""
    from vestnik.chunks import read_plan

    return [c.chunk for c in read_plan(plan)]


def gang_cores():
    """Cores a job's chunk renders can start on together: the run's cores when this machine
    runs the jobs, else 1 (a cluster gives each chunk job its own allocation)."""
    if not workflow.local_exec or workflow.remote_exec:
        return 1
    try:
        return workflow.cores
    except WorkflowError:
        return 1


def gate_threads(wildcards):
    """Cores the render gate holds: one per chunk, up to the run's cores, when its chunks are to
    start together (`chunks_together`); else one, and the gate is a formality."""
    if not config["chunks_together"]:
        return 1
    return min(len(planned_chunks(wildcards)), gang_cores())


def render_gate(wildcards):
    """Input function of a job's chunk renders and merge: its render gate, when it has several
    chunks. Whether the gate holds cores does not change the inputs, so neither the run's
    cores nor `chunks_together` reruns anything."""
    several = len(planned_chunks(wildcards)) > 1
    return [fill(layout.RENDER_GATE, job=wildcards.job)] if several else []


def per_chunk(pattern):
    """Input function: `pattern` for every chunk of the job's plan."""

    def inputs(wildcards):
        return expand(pattern, job=wildcards.job, i=planned_chunks(wildcards), allow_missing=True)

    return inputs


def every_chunk_video(wildcards):
    """Chunk videos of every job with a plan from an earlier run, as targets of `all`:
    Snakemake does not rebuild a missing intermediate file while the outputs made from it are
    up to date, so a deleted chunk would otherwise stay missing. A job without a plan yet gets
    its chunks through its merge; leaving it out keeps `all` from waiting on every plan, which
    would have Snakemake rebuild `all` (every job's inputs) after each plan it writes."""
    videos = per_chunk(layout.CHUNK_VIDEO)
    return [
        video
        for job in JOBS
        if Path(fill(layout.CHUNK_PLAN, job=job)).exists()
        for video in videos(SimpleNamespace(job=job))
    ]


def avatar_faces_file(wildcards):
    """The faces file of the job's avatar (none when its mouth box is configured)."""
    from vestnik.lipsync import faces_file

    settings = checked_settings(wildcards.job)
    path = faces_file(settings["lipsync"], settings["avatar"]) if settings else None
    return [path] if path else []


def every_faces_file(wildcards):
    """The faces file of every existing avatar, as targets of `all`: made first (see
    vestnik.priorities), not only once a plan asks for them."""
    jobs = [SimpleNamespace(job=job) for job in JOBS if avatar_input(SimpleNamespace(job=job))]
    return sorted({path for job in jobs for path in avatar_faces_file(job)})


def avatars_by_slug():
    """Avatar path and the jobs showing it, by the folder name of its faces files."""
    from vestnik.lipsync.face import avatar_slug

    found = {}
    for job in JOBS:
        settings = checked_settings(job)
        if settings:
            path = settings["avatar"]
            found.setdefault(avatar_slug(path), (path, []))[1].append(job)
    return found
