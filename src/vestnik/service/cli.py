"""`vestnik serve`: run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from types import FrameType

from vestnik.errors import VestnikError
from vestnik.service.settings import DEFAULT_PORT, ServiceSettings, is_loopback

log = logging.getLogger("vestnik.service")


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1 to 65535, got {text}")
    return value


def settings_from_args(args: argparse.Namespace) -> ServiceSettings:
    defaults = ServiceSettings()
    project = Path(args.project_dir).resolve()
    return ServiceSettings(
        project_dir=project,
        config_path=Path(args.config).resolve() if args.config else project / "config/config.yaml",
        runs_dir=Path(args.runs_dir).resolve() if args.runs_dir else project / "results/service",
        avatar_dirs=(project / "resources", *(Path(p).resolve() for p in args.avatars_dir)),
        snakemake=args.snakemake or defaults.snakemake,
        concurrency=args.concurrency,
        queue_size=args.queue_size,
        cores_per_run=args.cores_per_run,
        max_body_bytes=args.max_body_bytes,
        max_text_chars=args.max_text_chars,
        max_workers=args.max_workers,
        run_timeout=args.run_timeout,
        job_ttl=args.job_ttl,
        cleanup_interval=min(defaults.cleanup_interval, args.job_ttl),
    )


def cmd_serve(args: argparse.Namespace) -> None:
    try:
        import uvicorn

        from vestnik.service.app import create_app
    except ImportError as exc:
        raise VestnikError(
            f"the service needs the 'service' extra ({exc.name} is missing): "
            "pip install -e '.[service]'"
        ) from exc
    settings = settings_from_args(args)
    if not settings.snakefile.is_file():
        raise VestnikError("no Snakefile in the project folder", path=settings.snakefile)
    if not is_loopback(args.host):
        log.warning("listening on %s: the service has no authentication", args.host)
    app = create_app(settings)
    log.info(
        "serving on http://%s:%d (runs in %s, config %s)",
        args.host, args.port, settings.runs_dir, settings.config_path,
    )
    config = uvicorn.Config(
        app, host=args.host, port=args.port, log_level=args.log_level,
        timeout_graceful_shutdown=10,
    )
    manager = app.state.manager

    class Server(uvicorn.Server):
        """uvicorn's server, which also tells the job manager as soon as a stop signal arrives:
        uvicorn waits for open requests before it shuts the app down, and a request waiting for
        its video would otherwise wait until it is cut off without an answer."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if manager.loop is not None and not manager.stopping:
                manager.loop.call_soon_threadsafe(manager.begin_stop)
            super().handle_exit(sig, frame)

    Server(config).run()


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="HTTP API (POST /api/generate_parallel, GET /api/health)")
    defaults = ServiceSettings()
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT)
    serve.add_argument("--project-dir", default=str(defaults.project_dir),
                       help="folder with the Snakefile; relative config paths start here")
    serve.add_argument("--config", help="workflow config (default: PROJECT/config/config.yaml)")
    serve.add_argument("--runs-dir", help="per-job run folders (default: PROJECT/results/service)")
    serve.add_argument("--avatars-dir", action="append", default=[],
                       help="another folder of avatars requests may name (repeatable); "
                       "PROJECT/resources is always offered")
    serve.add_argument("--snakemake", help="snakemake executable (default: the venv's)")
    serve.add_argument("--concurrency", type=_positive(int),
                       help="workflow runs at once (default: GPU slots of the config, or 1)")
    serve.add_argument("--queue-size", type=_non_negative_int, default=defaults.queue_size,
                       help="jobs that may wait for a run slot; more get 429")
    serve.add_argument("--cores-per-run", type=_positive(int),
                       help="--cores of each run (default: CPU cores / concurrency)")
    serve.add_argument("--max-body-bytes", type=_positive(int), default=defaults.max_body_bytes)
    serve.add_argument("--max-text-chars", type=_positive(int), default=defaults.max_text_chars)
    serve.add_argument("--max-workers", type=_positive(int), default=defaults.max_workers,
                       help="largest num_workers a request may ask for")
    serve.add_argument("--run-timeout", type=_positive(float), default=defaults.run_timeout,
                       help="seconds before a workflow run is killed")
    serve.add_argument("--job-ttl", type=_positive(float), default=defaults.job_ttl,
                       help="seconds a finished job and its folder are kept")
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=cmd_serve)
