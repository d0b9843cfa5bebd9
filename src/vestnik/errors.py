"""User-facing errors: raised for bad input, printed without a traceback by the CLI."""


class VestnikError(Exception):
    """An input or configuration problem the user can fix; the message names the job and file."""

    def __init__(self, message: str, *, job: str | None = None, path: object | None = None):
        parts = []
        if job:
            parts.append(f"job '{job}'")
        if path is not None:
            parts.append(f"file '{path}'")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.job = job
        self.path = path
