"""Device slots: N model instances spread over the configured accelerators, one per lock file.

Snakemake's `--resources gpu=N` bounds how many GPU jobs run at once; it does not say which
device a job should use. Each job therefore takes a free slot itself: slot files
`<lock_dir>/<device>.slot<k>.lock`, held with a non-blocking exclusive `flock`. Slots are
probed slot-major (slot 0 of every device first), so three jobs on three GPUs get one GPU each
and three jobs on one GPU share it. The kernel drops a flock when its file descriptor closes,
including when the process is killed with SIGKILL, so a crashed job never leaves a slot taken.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vestnik.config import block_settings
from vestnik.errors import VestnikError

log = logging.getLogger("vestnik")

POLL_SECONDS = 0.2


def default_lock_dir() -> Path:
    """Machine-wide per user, so separate runs on one machine count the same slots."""
    return Path(tempfile.gettempdir()) / f"vestnik-gpu-slots-{os.getuid()}"


@dataclass(frozen=True)
class Slot:
    """Slot `index` of `device` (a torch device string such as "cuda:0"), held via `path`."""

    device: str
    index: int
    path: Path


class SlotLease:
    """A held slot; `release()` (or leaving the `with` block) frees it. Idempotent."""

    def __init__(self, slot: Slot, fd: int):
        self.slot = slot
        self._fd: int | None = fd

    @property
    def device(self) -> str:
        return self.slot.device

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> SlotLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _lock_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)


def _slots(
    devices: Sequence[str], keys: Sequence[str], per_device: int, lock_dir: Path
) -> list[Slot]:
    """Every slot in probing order: slot 0 of every device, then slot 1, and so on."""
    return [
        Slot(device, index, lock_dir / f"{_lock_name(key)}.slot{index}.lock")
        for index in range(per_device)
        for device, key in zip(devices, keys, strict=True)
    ]


def _keys(devices: Sequence[str], keys: Sequence[str] | None) -> list[str]:
    keys = list(keys) if keys is not None else list(devices)
    if len(keys) != len(devices):
        raise ValueError("one lock key per device")
    return keys


def try_acquire(
    devices: Sequence[str],
    per_device: int,
    lock_dir: str | os.PathLike,
    keys: Sequence[str] | None = None,
) -> SlotLease | None:
    """Take the first free slot without waiting, or return None when all are held.

    `keys` name the lock files (default: the device strings); give stable ids such as GPU
    UUIDs when processes may see the devices under different indices.
    """
    if per_device < 1 or not devices:
        raise ValueError("need at least one device and one slot per device")
    root = Path(lock_dir)
    root.mkdir(parents=True, exist_ok=True)
    for slot in _slots(devices, _keys(devices, keys), per_device, root):
        fd = os.open(slot.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {time.time():.3f}\n".encode())
        return SlotLease(slot, fd)
    return None


def acquire(
    devices: Sequence[str],
    per_device: int,
    lock_dir: str | os.PathLike,
    *,
    keys: Sequence[str] | None = None,
    wait: float,
    poll: float = POLL_SECONDS,
    job: str | None = None,
) -> SlotLease:
    """Take a free slot, polling up to `wait` seconds while all are held."""
    deadline = time.monotonic() + wait
    announced = False
    while True:
        lease = try_acquire(devices, per_device, lock_dir, keys)
        if lease is not None:
            return lease
        if time.monotonic() >= deadline:
            raise VestnikError(
                f"no free device slot after {wait:.0f} s ({len(devices)} device(s) x "
                f"{per_device} slot(s) all held; lock files in {lock_dir})",
                job=job,
            )
        if not announced:
            log.info("all %d device slots are busy; waiting", len(devices) * per_device)
            announced = True
        time.sleep(poll)


def held_slots(
    devices: Sequence[str],
    per_device: int,
    lock_dir: str | os.PathLike,
    keys: Sequence[str] | None = None,
) -> list[Slot]:
    """Slots currently held by some process (probed with a non-blocking shared lock)."""
    held = []
    for slot in _slots(devices, _keys(devices, keys), per_device, Path(lock_dir)):
        if not slot.path.exists():
            continue
        fd = os.open(slot.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(slot)
        finally:
            os.close(fd)
    return held


def cuda_devices(spec: object = "auto", *, job: str | None = None) -> tuple[list[str], list[str]]:
    """Resolve the `gpu.devices` setting to (torch device strings, lock keys).

    "auto" means every visible CUDA device; a list of integers picks visible devices by index.
    Lock keys are the GPUs' UUIDs where torch reports them, so processes that see the devices
    under different CUDA_VISIBLE_DEVICES orders still count the same slots. No CUDA gives
    empty lists.
    """
    import torch

    if not torch.cuda.is_available():
        return [], []
    count = torch.cuda.device_count()
    if spec == "auto" or spec is None:
        indices = list(range(count))
    elif isinstance(spec, (list, tuple)) and all(isinstance(i, int) for i in spec):
        indices = list(dict.fromkeys(spec))
        bad = [i for i in indices if not 0 <= i < count]
        if bad:
            raise VestnikError(
                f"gpu.devices {list(spec)} names device(s) {bad}, but {count} CUDA device(s) "
                "are visible",
                job=job,
            )
    else:
        raise VestnikError(f"gpu.devices must be 'auto' or a list of integers, got {spec!r}")
    devices = [f"cuda:{i}" for i in indices]
    keys = []
    for i in indices:
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        keys.append(f"gpu-{uuid}" if uuid else f"cuda{i}")
    return devices, keys


@contextmanager
def device_slot(gpu: dict | None, *, job: str | None = None) -> Iterator[str]:
    """Hold a slot of the `gpu:` config block for the duration of the block; yield the device.

    Without a visible CUDA device the work runs on the CPU, with a warning, and no slot
    is taken; with `require: true` it fails instead.
    """
    gpu = block_settings("gpu", gpu, job)
    devices, keys = cuda_devices(gpu["devices"], job=job)
    if not devices:
        if gpu["require"]:
            raise VestnikError(
                "gpu.require is true but no CUDA device is visible; run on a machine with a "
                "GPU, or set gpu.require: false to run on the CPU",
                job=job,
            )
        log.warning("no CUDA device available: running on the CPU (slow)")
        yield "cpu"
        return
    lock_dir = gpu["lock_dir"] or default_lock_dir()
    per_device, wait = gpu["slots_per_device"], float(gpu["wait_seconds"])
    with acquire(devices, per_device, lock_dir, keys=keys, wait=wait, job=job) as lease:
        log.info("holding slot %d of %s (%s)", lease.slot.index, lease.device, lease.slot.path)
        yield lease.device


def training_gpus(definition: str, block: Mapping[str, Any] | None) -> int:
    """The `gpu` resource of a training job (`definition`: vocoder_experiment or
    acoustic_experiment): one per rank (`world_size`), none on `device: cpu`, so CPU ranks, of
    one job or several, are bounded by cores alone."""
    from vestnik.config import experiment_settings

    settings = experiment_settings(definition, dict(block or {}), definition)
    return 0 if settings["device"] == "cpu" else int(settings["world_size"])
