"""HTTP service: the original `POST /api/generate_parallel` API, backed by the workflow.

`vestnik serve` starts it; see docs/service.md.
"""

from vestnik.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]


def create_app(settings: ServiceSettings | None = None):
    """The FastAPI app (imported lazily: FastAPI is an optional extra)."""
    from vestnik.service.app import create_app as build

    return build(settings)
