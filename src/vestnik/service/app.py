"""The HTTP API: the original `POST /api/generate_parallel` and `GET /api/health`, plus jobs.

Every request becomes one workflow job (see vestnik.service.jobs); the API validates input,
applies the limits, and turns job states into HTTP answers.
"""

from __future__ import annotations

import json
import os
import unicodedata
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from starlette.exceptions import HTTPException as StarletteHTTPException

from vestnik.errors import VestnikError
from vestnik.service import catalog
from vestnik.service.jobs import INTERRUPTED, Job, JobManager, JobRequest, QueueFull, Stopping
from vestnik.service.settings import LANGUAGES, ServiceSettings
from vestnik.text.encoding import encoding_problem
from vestnik.text.normalize import has_speakable

RETRY_AFTER_SECONDS = 5
"""Retry-After of a 429 (queue full) and of a 503 while the service stops or restarts."""
STATS_HEADER = "X-Vestnik-Stats"
JOB_HEADER = "X-Vestnik-Job"
EXAMPLE_TEXT = (
    "В настоящее время реализуется проект строительства волоконно-оптической линии по дну "
    "Каспийского моря между Актау и Сумгаитом."
)


class GenerateRequest(BaseModel):
    """The original request body, plus optional engine and avatar choices."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": EXAMPLE_TEXT, "language": "ru", "num_workers": 3, "use_only_gan": True}
            ]
        },
    )

    text: str = Field(description="Russian text to speak (limit: see GET /api/health limits)")
    language: str = Field("ru", description="language of the text; only 'ru' is supported")
    num_workers: StrictInt = Field(
        3, description="how many chunks the speech is cut into and rendered in parallel"
    )
    use_only_gan: StrictBool = Field(
        True,
        description=(
            "true: the neural lip-sync engine (wav2lip) when its checkpoint is present, else "
            "the procedural engine; false: the procedural engine. An explicit lipsync_engine "
            "takes precedence."
        ),
    )
    tts_engine: str | None = Field(None, description="TTS engine; default from the config")
    lipsync_engine: str | None = Field(
        None, description="lip-sync engine; overrides use_only_gan when given"
    )
    avatar: str | None = Field(
        None, description="an avatar name from GET /api/health avatars; default from the config"
    )


class JobRequestInfo(BaseModel):
    language: str
    text_chars: int
    num_workers: int
    tts_engine: str
    lipsync_engine: str
    lipsync_engine_reason: str
    avatar: str


class JobStatus(BaseModel):
    job_id: str
    status: str = Field(description="queued, running, done or failed")
    created_at: float
    started_at: float | None
    finished_at: float | None
    queue_position: int | None = Field(description="1 = next to start; null unless queued")
    request: JobRequestInfo
    stats: dict[str, Any] | None = Field(
        description="stats.json of the workflow plus the service's own times (when done)"
    )
    error: str | None
    error_kind: str | None = Field(
        description="input, timeout, interrupted (its run ended while the service restarted) or "
        "internal (when failed)"
    )
    log_tail: str | None = None
    status_url: str
    video_url: str


class ErrorBody(BaseModel):
    error: str
    job_id: str | None = None


class ApiError(Exception):
    """An HTTP answer with a JSON `{"error": ...}` body."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, before the app parses them."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send):
        response = JSONResponse(
            {"error": f"request body is larger than {self.limit} bytes"}, status_code=413
        )
        await response(scope, receive, send)


RETRY_AFTER = {"Retry-After": str(RETRY_AFTER_SECONDS)}


def _error_response(
    status: int, message: str, headers: dict | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _validation_message(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"] if part != "body") or "body"
    if error["type"] == "json_invalid":
        return f"the body is not valid JSON ({error.get('ctx', {}).get('error', 'parse error')})"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    if error["type"] == "missing":
        return f"{where}: required"
    return f"{where}: {error['msg']}"


def wants_json(request: Request) -> bool:
    """`Accept: application/json` (without video/mp4) asks for the JSON variant."""
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "video/mp4" not in accept


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The ASGI app; `vestnik serve` runs it with uvicorn."""
    settings = settings or ServiceSettings()
    manager = JobManager(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await manager.start()
        yield
        await manager.stop()

    app = FastAPI(
        title="Vestnik",
        version="0.1.0",
        summary="Russian text to a lip-synced talking-head video, rendered by the workflow",
        lifespan=lifespan,
    )
    app.state.manager = manager
    app.state.settings = settings

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = exc.extra.pop("headers", None)
        return _error_response(exc.status, exc.message, headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
        return _error_response(status, "; ".join(_validation_message(e) for e in errors))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Routing and parsing errors (404, 405, 400) in the same shape as every other error."""
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {request.url.path} (allowed: {allowed})"
        return _error_response(exc.status_code, message, exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
        return _error_response(500, f"internal error of the service ({type(exc).__name__})")

    def current_config() -> dict:
        try:
            return manager.base_config
        except VestnikError as exc:
            raise ApiError(503, f"the workflow config cannot be used: {exc}") from None

    def job_request(body: GenerateRequest) -> JobRequest:
        """Check a request against the limits and the catalog; raise 4xx ApiErrors."""
        text = body.text.strip()
        problem = encoding_problem(text)
        if problem:
            raise ApiError(422, f"text: {problem}")
        if not text:
            raise ApiError(422, "text: is empty")
        if len(text) > settings.max_text_chars:
            raise ApiError(
                422, f"text: {len(text)} characters, the limit is {settings.max_text_chars}"
            )
        if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in text):
            raise ApiError(422, "text: contains control characters")
        if not has_speakable(text):
            raise ApiError(422, "text: nothing speakable (no letters or numbers)")
        if body.language not in LANGUAGES:
            raise ApiError(
                422,
                f"language: '{body.language}' is not supported (supported: {', '.join(LANGUAGES)})",
            )
        if not 1 <= body.num_workers <= settings.max_workers:
            raise ApiError(
                422, f"num_workers: must be between 1 and {settings.max_workers}, "
                f"got {body.num_workers}"
            )
        config = current_config()
        project = settings.project_dir
        tts = body.tts_engine or config["defaults"]["tts"]["engine"]
        tts_info = _check_engine(config, "tts", tts, project)
        if body.lipsync_engine:
            lipsync, reason = body.lipsync_engine, "chosen by the request"
        elif body.use_only_gan:
            lipsync, reason = catalog.gan_engine(config, project)
        else:
            lipsync, reason = catalog.FALLBACK_LIPSYNC, "use_only_gan is false"
        lipsync_info = _check_engine(config, "lipsync", lipsync, project)
        whitelist = catalog.avatars(settings.avatar_dirs)
        if body.avatar is None:
            avatar = catalog.resolve(config["defaults"]["avatar"], project)
            name = catalog.default_avatar_name(config, project, whitelist) or avatar.name
        elif body.avatar in whitelist:
            avatar, name = whitelist[body.avatar], body.avatar
        else:
            known = ", ".join(sorted(whitelist)) or "none"
            raise ApiError(422, f"avatar: unknown avatar '{body.avatar}' (available: {known})")
        return JobRequest(
            text=text, num_workers=body.num_workers, tts_engine=tts, lipsync_engine=lipsync,
            lipsync_reason=reason, avatar=avatar, avatar_name=name, language=body.language,
            pins={"tts": tts_info.pinned(), "lipsync": lipsync_info.pinned()},
        )

    def submit(body: GenerateRequest) -> Job:
        request = job_request(body)
        try:
            return manager.submit(request)
        except VestnikError as exc:
            raise ApiError(503, f"the workflow config cannot be used: {exc}") from None
        except Stopping as exc:
            raise ApiError(503, f"{exc}; retry later", headers=RETRY_AFTER) from None
        except QueueFull as exc:
            raise ApiError(
                429, f"the service is busy: {exc}; retry later", headers=RETRY_AFTER
            ) from None

    def status(job: Job) -> dict:
        described = manager.describe(job)
        described["log_tail"] = job.log_tail
        described["status_url"] = f"/api/jobs/{job.id}"
        described["video_url"] = f"/api/jobs/{job.id}/video"
        return described

    def find(job_id: str) -> Job:
        job = manager.jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"no job '{job_id}' (unknown, or removed after its time to live)")
        return job

    def video(job: Job) -> FileResponse:
        if not job.final_video.is_file():  # a folder emptied by hand since the job finished
            raise ApiError(404, f"the video of job '{job.id}' is no longer on disk", job_id=job.id)
        headers = {
            JOB_HEADER: job.id,
            STATS_HEADER: json.dumps(job.stats, ensure_ascii=True, separators=(",", ":")),
        }
        return FileResponse(
            job.final_video, media_type="video/mp4", filename=f"vestnik-{job.id}.mp4",
            headers=headers,
        )

    def failed(job: Job) -> ApiError:
        code = {"input": 422, "timeout": 504, INTERRUPTED: 503}.get(job.error_kind or "", 500)
        headers = RETRY_AFTER if code == 503 else None
        return ApiError(code, job.error or "the job failed", job_id=job.id, headers=headers)

    video_responses: dict[int | str, dict[str, Any]] = {
        200: {
            "content": {
                "video/mp4": {},
                "application/json": {"schema": {"$ref": "#/components/schemas/JobStatus"}},
            },
            "description": f"the mp4; stats in the {STATS_HEADER} header (JSON) and the job id in "
            f"{JOB_HEADER}. With Accept: application/json, the job's status with a video_url.",
        },
        400: {"model": ErrorBody, "description": "the body is not JSON"},
        413: {"model": ErrorBody, "description": "the body is too large"},
        422: {"model": ErrorBody, "description": "invalid input, or input the workflow refused"},
        429: {"model": ErrorBody, "description": "the queue is full; retry after Retry-After s"},
        500: {"model": ErrorBody, "description": "the workflow failed"},
        503: {"model": ErrorBody, "description": "the service is restarting (the job goes on; "
              "fetch it by its job_id after Retry-After s), or its workflow config is broken"},
        504: {"model": ErrorBody, "description": "the workflow ran over its time limit"},
    }

    @app.post(
        "/api/generate_parallel",
        response_class=Response,
        responses=video_responses,
        summary="Render a video and wait for it",
    )
    async def generate_parallel(body: GenerateRequest, request: Request) -> Response:
        """Run the workflow for the text and answer with the mp4 once it is rendered.

        The job keeps running if the client goes away; its status stays at /api/jobs/{id}.
        """
        job = submit(body)
        if not await manager.wait_finished(job):
            raise ApiError(
                503, "the service is restarting; the job goes on and its video will be at "
                f"/api/jobs/{job.id}/video", job_id=job.id, headers=RETRY_AFTER,
            )
        if job.state != "done":
            raise failed(job)
        if wants_json(request):
            return JSONResponse(status(job), headers={JOB_HEADER: job.id})
        return video(job)

    @app.post(
        "/api/jobs",
        status_code=202,
        response_model=JobStatus,
        responses={k: v for k, v in video_responses.items() if k in (400, 413, 422, 429)},
        summary="Submit a job without waiting",
    )
    async def submit_job(body: GenerateRequest) -> JSONResponse:
        """Queue a job and answer at once (202) with its status and video URLs."""
        job = submit(body)
        return JSONResponse(
            status(job), status_code=202, headers={"Location": f"/api/jobs/{job.id}"}
        )

    @app.get("/api/jobs/{job_id}", response_model=JobStatus, responses={404: {"model": ErrorBody}})
    async def job_status(job_id: str) -> dict:
        """Status, stats when done, the error and the end of Snakemake's log when failed."""
        return status(find(job_id))

    @app.get(
        "/api/jobs/{job_id}/video",
        response_class=FileResponse,
        responses={
            200: {"content": {"video/mp4": {}}, "description": "the rendered video"},
            404: {"model": ErrorBody},
            409: {"model": ErrorBody, "description": "the job is not done (queued/running)"},
            422: {"model": ErrorBody}, 500: {"model": ErrorBody}, 504: {"model": ErrorBody},
        },
    )
    async def job_video(job_id: str) -> Response:
        """The finished job's mp4; 409 while it is queued or running."""
        job = find(job_id)
        if job.state == "done":
            return video(job)
        if job.state == "failed":
            raise failed(job)
        raise ApiError(409, f"job '{job.id}' is {job.state}", job_id=job.id)

    @app.get("/api/health")
    async def health(
        response: Response,
        strict: Annotated[bool, Query(description="answer 503 when not ready")] = False,
    ) -> dict:
        """Readiness, engines and checkpoints, GPU slots, queue and limits."""
        report = health_report(settings, manager)
        if strict and report["status"] != "ready":
            response.status_code = 503
        return report

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def _check_engine(config: dict, kind: str, name: str, project: Path) -> catalog.EngineInfo:
    known = catalog.all_engines(config, project)[kind]
    if name not in known:
        raise ApiError(
            422, f"{kind}_engine: unknown engine '{name}' (known: {', '.join(known)})"
        )
    info = known[name]
    if not info.available:
        raise ApiError(422, f"{kind}_engine: '{name}' is not available: {info.reason}")
    return info


def health_report(settings: ServiceSettings, manager: JobManager) -> dict:
    """Everything a client or an operator needs to know before sending work."""
    try:
        config = manager.base_config
    except VestnikError as exc:
        return {"status": "not ready", "problems": [f"workflow config: {exc}"],
                "jobs": {**manager.counts(), "concurrency": manager.concurrency}}
    project = settings.project_dir
    engines = catalog.all_engines(config, project)
    whitelist = catalog.avatars(settings.avatar_dirs)
    default_avatar = catalog.resolve(config["defaults"]["avatar"], project)
    problems = []
    if not settings.snakefile.is_file():
        problems.append(f"no Snakefile at {settings.snakefile}")
    snakemake = Path(settings.snakemake)
    if snakemake.is_absolute() and not os.access(snakemake, os.X_OK):
        problems.append(f"snakemake not executable at {snakemake}")
    if not os.access(settings.runs_dir, os.W_OK):
        problems.append(f"runs folder not writable: {settings.runs_dir}")
    if not default_avatar.is_file():
        problems.append(f"default avatar missing: {default_avatar}")
    for kind in ("tts", "lipsync"):
        default = config["defaults"][kind]["engine"]
        if not engines[kind].get(default) or not engines[kind][default].available:
            problems.append(f"default {kind} engine '{default}' is not available")
    gan, gan_reason = catalog.gan_engine(config, project)
    gpu_running = sum(1 for job_id in manager.running if manager.jobs[job_id].takes_device_slot)
    return {
        "status": "ready" if not problems else "not ready",
        "problems": problems,
        "languages": list(LANGUAGES),
        "engines": {
            kind: {name: info.as_dict() for name, info in infos.items()}
            for kind, infos in engines.items()
        },
        "use_only_gan": {"engine": gan, "reason": gan_reason},
        "models": {
            f"{kind}.{name}.{key}": checkpoint
            for kind, infos in engines.items()
            for name, info in infos.items()
            for key, checkpoint in info.checkpoints.items()
        },
        "gpu": {
            "devices": manager.gpu.devices,
            "slots_per_device": manager.gpu.per_device,
            "slots_configured": manager.gpu.total,
            "slots_in_use": manager.gpu.in_use(),
            "note": manager.gpu.note,
            "gpu_resource_per_run": manager.gpu_per_run,
            "running_jobs_on_gpu_engines": gpu_running,
        },
        "jobs": {
            **manager.counts(),
            "concurrency": manager.concurrency,
            "queue_limit": settings.queue_size,
            "cores_per_run": manager.cores_per_run,
        },
        "limits": {
            "max_body_bytes": settings.max_body_bytes,
            "max_text_chars": settings.max_text_chars,
            "num_workers": [1, settings.max_workers],
            "run_timeout_seconds": settings.run_timeout,
            "job_ttl_seconds": settings.job_ttl,
        },
        "avatars": {
            "default": catalog.default_avatar_name(config, project, whitelist),
            "available": sorted(whitelist),
        },
    }
