"""Jobs of the service: a bounded queue, a limit on concurrent workflow runs, per-job folders.

Each job runs the repository's Snakefile through Snakemake's command line in its own folder
(`--directory`), with a generated config whose only job is this one, so concurrent jobs never
share a file and a job's outputs are exactly what `snakemake` would write for the same config.
All bookkeeping happens on the event loop thread, so it needs no locks.

Runs outlive the service: every job's record (`job.json` in its folder) is rewritten at each
change of state and names the process id of its Snakemake run, so a service started again on
the same runs folder (after a stop, a restart or a SIGKILL) takes over the jobs of the one
before: finished ones stay available until they expire, queued ones run, running ones are
watched to their end.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from vestnik import engines, layout
from vestnik.config import check_job, load_config
from vestnik.errors import VestnikError
from vestnik.io import write_json, write_text
from vestnik.runner import read_error_record
from vestnik.service.catalog import gpu_slots
from vestnik.service.settings import ServiceSettings

log = logging.getLogger("vestnik.service")

MARKER = "job.json"
"""Written first into every run folder; clean-up only ever deletes folders that hold it."""
LOG_TAIL_LINES = 30
INTERRUPTED = "interrupted"
"""error_kind of a job whose run ended without its outputs while no service watched it."""
RUN_POLL_SECONDS = 0.25
"""How often a run is checked: runs are watched by process id so a restarted service can
watch the runs of the one before, which are not its children."""
TIMED_OUT = -1000
"""`_wait_run`'s answer for a run it killed for overrunning the timeout."""


class QueueFull(Exception):
    """Every run slot is busy and the waiting queue is at its limit."""


class Stopping(Exception):
    """The service is shutting down and takes no new jobs."""


@dataclass
class JobRequest:
    """A validated request: what the workflow job will be."""

    text: str
    num_workers: int
    tts_engine: str
    lipsync_engine: str
    lipsync_reason: str
    avatar: Path
    avatar_name: str
    language: str = "ru"
    pins: dict = field(default_factory=dict)
    """Per kind ("tts", "lipsync"): settings pinning the engines' weight files (absolute)."""


@dataclass
class Job:
    id: str
    request: JobRequest
    run_dir: Path
    config: dict = field(default_factory=dict)
    """The run's workflow config, as written to its folder's config/config.yaml."""
    state: str = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    stats: dict | None = None
    error: str | None = None
    error_kind: str | None = None
    log_tail: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    process: subprocess.Popen | None = None
    """The run this service started; None for a run found again after a restart."""
    pid: int | None = None
    """Process id of the job's Snakemake run (a session leader), recorded for a restart."""

    @property
    def final_video(self) -> Path:
        return self.run_dir / layout.job_path(layout.FINAL_VIDEO, self.id)

    @property
    def stats_path(self) -> Path:
        return self.run_dir / layout.job_path(layout.STATS, self.id)

    @property
    def takes_device_slot(self) -> bool:
        """Whether the run holds a `gpu` device slot for one of its engines."""
        try:
            settings = check_job(self.config, self.id)
        except VestnikError:
            return False
        return any(engines.takes_device_slot(settings, kind) for kind in engines.KINDS)

    @property
    def snakemake_log(self) -> Path:
        return self.run_dir / "snakemake.log"


def new_job_id() -> str:
    """Sortable by time and unguessable; also a valid workflow job name."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(6)


def absolute_paths(value: object, project_dir: Path) -> object:
    """Copy of a config value with relative paths made absolute against the project.

    A run happens in its own folder, so a relative path (an avatar, a checkpoint) would point
    into that folder; strings with a '/' that name an existing project file or folder are
    rewritten, everything else (voices, engine names) is left alone.
    """
    if isinstance(value, dict):
        return {key: absolute_paths(item, project_dir) for key, item in value.items()}
    if isinstance(value, list):
        return [absolute_paths(item, project_dir) for item in value]
    if isinstance(value, str) and "/" in value and not Path(value).is_absolute():
        candidate = project_dir / value
        if candidate.exists():
            return str(candidate.resolve())
    return value


def run_config(base: dict, job_id: str, request: JobRequest, project_dir: Path) -> dict:
    """The workflow config of one run: the service's config with this job as its only job."""
    config = absolute_paths(copy.deepcopy(base), project_dir)
    config["jobs"] = {
        job_id: {
            "text": request.text,
            "avatar": str(request.avatar),
            "tts": {"engine": request.tts_engine, **request.pins.get("tts", {})},
            "chunks": {"workers": request.num_workers},
            "lipsync": {"engine": request.lipsync_engine, **request.pins.get("lipsync", {})},
        }
    }
    return config


def failure(job: Job) -> tuple[str, str]:
    """(kind, message) of a failed run: 'input' when a step refused the job's input.

    Steps leave an error record (vestnik.runner) beside their outputs; a refused input is
    reported with its whole message, however many lines (a schema error lists each problem).
    Anything else is an internal failure, reported with the end of Snakemake's own log.
    """
    records = [
        record
        for path in sorted((job.run_dir / layout.job_path(layout.JOB, job.id)).rglob(
            layout.ERROR_RECORD))
        if (record := read_error_record(path))
    ]
    for record in sorted(records, key=lambda r: (r.get("kind") != "input", r.get("time", 0))):
        if record.get("kind") == "input":
            message = record["message"]
            for prefix in (f"job '{job.id}': ", f"job '{job.id}', "):
                message = message.replace(prefix, "")
            return "input", f"{message} (workflow step {record.get('rule')})"
    return "internal", "the workflow failed; see log_tail in GET /api/jobs/" + job.id


def request_from_record(record: dict) -> JobRequest:
    return JobRequest(**{**record, "avatar": Path(record["avatar"])})


def process_has_argument(pid: int | None, argument: str) -> bool:
    """True if process `pid` is alive with `argument` on its command line (so a process id
    reused by an unrelated program does not count)."""
    if not pid:
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return os.fsencode(argument) in command


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


class JobManager:
    """Queue, run and forget jobs.

    At most `concurrency` workflow runs at once; up to `queue_size` more wait in order; a job
    beyond that is refused with QueueFull. Finished jobs (and their folders) are kept for
    `job_ttl` seconds after they finish, then removed.
    """

    def __init__(self, settings: ServiceSettings):
        self.settings = settings
        self._config: dict = {}
        self._config_stamp: int | None = None
        self.gpu = gpu_slots(self.base_config)
        self.concurrency = settings.concurrency or max(1, self.gpu.total)
        self.cores_per_run = settings.cores_per_run or max(
            1, settings.cpu_cores() // self.concurrency
        )
        self.gpu_per_run = max(1, self.gpu.total)
        self.jobs: dict[str, Job] = {}
        self.waiting: deque[Job] = deque()
        self.running: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._cleaner: asyncio.Task | None = None
        self.stopping = False
        self.stopped = asyncio.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        """The event loop the manager runs on (set by `start`), for calls from signal handlers."""

    @property
    def base_config(self) -> dict:
        """The workflow config, read again whenever its file changes.

        Jobs take the config as it is when they are submitted, so a workflow update that needs
        new config keys does not need a service restart. A broken edit raises VestnikError.
        """
        path = self.settings.config_path
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            raise VestnikError("config file not found", path=path) from None
        if stamp != self._config_stamp:
            self._config = load_config(path)
            self._config_stamp = stamp
        return self._config

    # life cycle

    async def start(self) -> None:
        self.settings.runs_dir.mkdir(parents=True, exist_ok=True)
        self.loop = asyncio.get_running_loop()
        self.remove_stale_folders()
        self.restore()
        self._cleaner = asyncio.create_task(self._clean_periodically())

    def begin_stop(self) -> None:
        """The service was told to stop: take no new jobs, and let requests that wait for a
        video answer now (503 with the job id) while the server still sends answers.

        Workflow runs are left running (each in its own session) and queued jobs stay queued
        in their records: the next service on this runs folder takes them over (`restore`).
        """
        self.stopping = True
        self.stopped.set()

    async def stop(self) -> None:
        """Stop the cleaner and stop watching the runs; they go on without the service."""
        self.begin_stop()
        for task in (self._cleaner, *self._tasks):
            if task:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_finished(self, job: Job) -> bool:
        """Wait until the job ends (True) or the service begins to stop (False)."""
        ended = asyncio.ensure_future(job.done.wait())
        stopping = asyncio.ensure_future(self.stopped.wait())
        await asyncio.wait({ended, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (ended, stopping):
            waiter.cancel()
        return job.done.is_set()

    def restore(self) -> list[Job]:
        """Take over the job records of earlier service processes from the runs folder.

        Finished jobs come back as they were; queued ones join the queue in their order; a
        running one is watched again through the process id of its Snakemake run (it outlives
        its service, SIGKILL included) and ends like any other: done when its outputs are there,
        failed (interrupted, when nothing says why) when its run ended without them.
        """
        restored = []
        for marker in sorted(self.settings.runs_dir.glob(f"*/{MARKER}")):
            try:
                job, service = self._job_from_record(marker)
            except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as exc:
                log.warning("ignoring the unreadable job record %s: %s", marker, exc)
                continue
            if job.id in self.jobs or (
                service != os.getpid() and process_has_argument(service, "serve")
            ):
                continue  # ours already, or a job of another service alive on this folder
            self.jobs[job.id] = job
            restored.append(job)
            if job.finished is not None:
                job.done.set()
            elif job.state == "running":
                log.info("job %s: watching its workflow run again (pid %s)", job.id, job.pid)
                self._launch(job)
        for job in sorted((j for j in restored if j.state == "queued"), key=lambda j: j.created):
            self.waiting.append(job)
        self._start_waiting()
        if restored:
            log.info("restored %d job records from %s", len(restored), self.settings.runs_dir)
        return restored

    def _job_from_record(self, marker: Path) -> tuple[Job, int | None]:
        """The job a record describes, and the process id of the service that wrote it."""
        data = json.loads(marker.read_text(encoding="utf-8"))
        if data["job_id"] != marker.parent.name:
            raise ValueError(f"the record is of job {data['job_id']!r}")
        record = data["record"]
        config_file = marker.parent / "config" / "config.yaml"
        config = yaml.safe_load(config_file.read_text("utf-8")) if config_file.is_file() else {}
        return Job(
            id=data["job_id"], request=request_from_record(record["request"]),
            run_dir=marker.parent, config=config, state=data["status"], created=data["created_at"],
            started=data["started_at"], finished=data["finished_at"], stats=data["stats"],
            error=data["error"], error_kind=data["error_kind"], log_tail=record["log_tail"],
            pid=record["pid"],
        ), record.get("service_pid")

    def save_record(self, job: Job) -> None:
        """Write the job's record (its status plus what a restarted service needs)."""
        record = {"request": {**asdict(job.request), "avatar": str(job.request.avatar)},
                  "pid": job.pid, "log_tail": job.log_tail, "service_pid": os.getpid()}
        write_json(job.run_dir / MARKER, {**self.describe(job), "record": record})

    # submitting

    def submit(self, request: JobRequest) -> Job:
        """Create the job's folder and start it now, or queue it.

        Raises QueueFull, Stopping, or VestnikError when the workflow config cannot be read.
        """
        if self.stopping:
            raise Stopping("the service is stopping")
        if len(self.running) >= self.concurrency and len(self.waiting) >= self.settings.queue_size:
            raise QueueFull(
                f"{len(self.running)} jobs running and {len(self.waiting)} waiting "
                f"(limits {self.concurrency} and {self.settings.queue_size})"
            )
        job_id = new_job_id()
        config = run_config(self.base_config, job_id, request, self.settings.project_dir)
        job = Job(job_id, request, self.settings.runs_dir / job_id, config)
        job.run_dir.mkdir(parents=True)
        self.save_record(job)
        write_text(
            job.run_dir / "config" / "config.yaml", yaml.safe_dump(config, allow_unicode=True)
        )
        self.jobs[job_id] = job
        if len(self.running) < self.concurrency:
            self._launch(job)
        else:
            self.waiting.append(job)
        log.info("job %s accepted (%d chars, %d workers, %s)", job_id, len(request.text),
                 request.num_workers, request.lipsync_engine)
        return job

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job to start, None if the job is not waiting."""
        for index, waiting in enumerate(self.waiting):
            if waiting is job:
                return index + 1
        return None

    def describe(self, job: Job) -> dict:
        request = job.request
        return {
            "job_id": job.id,
            "status": job.state,
            "created_at": job.created,
            "started_at": job.started,
            "finished_at": job.finished,
            "queue_position": self.queue_position(job),
            "request": {
                "language": request.language,
                "text_chars": len(request.text),
                "num_workers": request.num_workers,
                "tts_engine": request.tts_engine,
                "lipsync_engine": request.lipsync_engine,
                "lipsync_engine_reason": request.lipsync_reason,
                "avatar": request.avatar_name,
            },
            "stats": job.stats,
            "error": job.error,
            "error_kind": job.error_kind,
        }

    # running

    def _launch(self, job: Job) -> None:
        self.running.add(job.id)
        if job.state != "running":
            job.state = "running"
            job.started = time.time()
        task = asyncio.create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_waiting(self) -> None:
        while self.waiting and len(self.running) < self.concurrency and not self.stopping:
            self._launch(self.waiting.popleft())

    def command(self, job: Job) -> list[str]:
        return [
            self.settings.snakemake,
            "--snakefile", str(self.settings.snakefile),
            "--directory", str(job.run_dir),
            "--cores", str(self.cores_per_run),
            "--resources", f"gpu={self.gpu_per_run}",
            "--latency-wait", "5",
            "--nocolor",
            layout.job_path(layout.FINAL_VIDEO, job.id),
            layout.job_path(layout.STATS, job.id),
        ]

    async def _run(self, job: Job) -> None:
        """Start the job's Snakemake run (or, for a restored job, find it again), wait for it
        within the run timeout, and finish the job from its outputs and logs."""
        try:
            if job.pid is None:
                job.process = self._start_run(job)
                job.pid = job.process.pid
                self.save_record(job)
            code = await self._wait_run(job)
            if code == TIMED_OUT:
                late = ("timeout", f"the workflow ran over {self.settings.run_timeout:g} s")
                self._finish(job, "failed", error=late)
            elif code in (0, None) and job.final_video.is_file() and job.stats_path.is_file():
                self._finish(job, "done")
            else:
                kind, message = failure(job)
                if code is None and kind == "internal":  # ended while no service watched it
                    kind, message = INTERRUPTED, (
                        "the workflow run ended without its outputs while the service was "
                        "restarting; submit the job again")
                self._finish(job, "failed", error=(kind, message))
        except Exception as exc:  # the job must end and free its slot whatever went wrong
            log.exception("job %s: the service could not run the workflow", job.id)
            self._finish(job, "failed", error=("internal", f"the service could not run it: {exc}"))

    def _start_run(self, job: Job) -> subprocess.Popen:
        """Snakemake in its own session, so that it outlives a restart of the service."""
        src = str(self.settings.project_dir / "src")
        path = os.environ.get("PYTHONPATH")
        env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{path}" if path else src}
        with open(job.snakemake_log, "wb") as out:
            return subprocess.Popen(
                self.command(job), cwd=job.run_dir, env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )

    async def _wait_run(self, job: Job) -> int | None:
        """Exit status of the job's run; None for a run another service started (its status is
        not ours to read); TIMED_OUT after killing a run that overran the timeout."""
        while True:
            if job.process is not None:
                code = job.process.poll()
                if code is not None:
                    return code
            elif not process_has_argument(job.pid, str(job.run_dir)):
                return None
            if time.time() - (job.started or job.created) > self.settings.run_timeout:
                self._kill(job.pid)
                while (job.process.poll() is None if job.process is not None
                       else process_has_argument(job.pid, str(job.run_dir))):
                    await asyncio.sleep(RUN_POLL_SECONDS)
                return TIMED_OUT
            await asyncio.sleep(RUN_POLL_SECONDS)

    def _finish(self, job: Job, state: str, error: tuple[str, str] | None = None) -> None:
        job.state = state
        job.finished = time.time()
        if state == "done":
            job.stats = self._stats(job)
            log.info("job %s done: %s", job.id, summary(job.stats))
        else:
            job.error_kind, job.error = error
            job.log_tail = tail(job.snakemake_log)
            log.warning("job %s failed (%s): %s", job.id, job.error_kind, job.error)
        with contextlib.suppress(OSError):
            self.save_record(job)
        job.done.set()
        if job.id in self.running:
            self.running.discard(job.id)
            self._start_waiting()

    def _stats(self, job: Job) -> dict:
        """The workflow's stats.json plus the service's own times (queue, Snakemake run)."""
        stats = json.loads(job.stats_path.read_text(encoding="utf-8"))
        workflow = job.finished - job.started
        stats["service"] = {
            "queued_seconds": round(job.started - job.created, 3),
            "workflow_seconds": round(workflow, 3),
            "workflow_overhead_seconds": round(workflow - stats["seconds"]["total"], 3),
            "lipsync_engine_reason": job.request.lipsync_reason,
        }
        return stats

    @staticmethod
    def _kill(pid: int) -> None:
        """Snakemake runs in its own session: end it and every step it started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)

    # clean-up

    async def _clean_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cleanup_interval)
            self.remove_expired()

    def remove_expired(self, now: float | None = None) -> list[str]:
        """Forget finished jobs older than the TTL and delete their folders."""
        now = time.time() if now is None else now
        expired = [
            job for job in self.jobs.values()
            if job.finished is not None and now - job.finished > self.settings.job_ttl
        ]
        for job in expired:
            del self.jobs[job.id]
            shutil.rmtree(job.run_dir, ignore_errors=True)
        if expired:
            ttl = self.settings.job_ttl
            log.info("removed %d finished jobs older than %g s", len(expired), ttl)
        return [job.id for job in expired]

    def remove_stale_folders(self) -> list[Path]:
        """Delete run folders of earlier service processes once they are older than the TTL.

        Only folders that hold the job marker are touched, so a mistaken --runs-dir never
        loses unrelated files.
        """
        removed = []
        cutoff = time.time() - self.settings.job_ttl
        for marker in self.settings.runs_dir.glob(f"*/{MARKER}"):
            folder = marker.parent
            if folder.name not in self.jobs and marker.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed

    def counts(self) -> dict[str, int]:
        finished = sum(1 for job in self.jobs.values() if job.finished is not None)
        return {"queued": len(self.waiting), "running": len(self.running), "finished": finished}


def summary(stats: dict) -> str:
    """One line like the original service's log: stage seconds, chunks and speed-up."""
    seconds = stats["seconds"]
    return (
        f"tts {seconds['tts']:.2f} s, plan {seconds['plan']:.2f} s, "
        f"split {seconds['split']:.2f} s, "
        f"parallel lip-sync {seconds['lipsync_parallel']:.2f} s, merge {seconds['merge']:.2f} s, "
        f"total {seconds['total']:.2f} s, {stats['chunks']} chunks, speed-up {stats['speedup']}x"
    )
