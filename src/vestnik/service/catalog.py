"""What the service can offer: engines and their checkpoints, avatars, and GPU slots.

Everything here is read from the workflow config and the file system on each call (cheap
stats), so the health endpoint reflects a checkpoint copied in while the service runs.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from pathlib import Path

from vestnik.avatar import IMAGE_SUFFIXES, VIDEO_SUFFIXES

NEURAL_LIPSYNC = "wav2lip"
"""The lip-sync engine `use_only_gan: true` asks for (the GAN-trained Wav2Lip network)."""
FALLBACK_LIPSYNC = "procedural"
"""The engine used when the neural one is not available, and for `use_only_gan: false`."""
WEIGHTED_ENGINES = {
    "tts": {"neural": None},
    "lipsync": {NEURAL_LIPSYNC: ("vestnik.lipsync.wav2lip", "Wav2LipEngine")},
}
"""Engines that cannot run without trained weights, with the class whose DEFAULTS name them."""


@dataclass
class EngineInfo:
    """One engine as the service sees it: whether a request may choose it, and why not."""

    kind: str
    name: str
    available: bool
    reason: str | None
    checkpoints: dict[str, dict]

    def as_dict(self) -> dict:
        return asdict(self)


def registered_engines(kind: str) -> tuple[str, ...]:
    """Engine names the installed vestnik package can build (its registry)."""
    module = importlib.import_module(f"vestnik.{kind}")
    return tuple(getattr(module, "ENGINES", ()))


def resolve(path: str | Path, project_dir: Path) -> Path:
    """A config path as the workflow sees it: relative paths are relative to the project."""
    path = Path(path)
    return path if path.is_absolute() else project_dir / path


def engine_defaults(kind: str, name: str) -> dict:
    """The settings an engine uses when the config leaves them out (its class's DEFAULTS)."""
    where = WEIGHTED_ENGINES[kind].get(name)
    if where is None:
        return {}
    try:
        module = importlib.import_module(where[0])
    except ImportError:
        return {}
    return dict(getattr(getattr(module, where[1], None), "DEFAULTS", {}))


def _checkpoint_keys(block: dict) -> dict[str, str]:
    return {
        key: value
        for key, value in block.items()
        if isinstance(value, str) and (key == "checkpoint" or key.endswith("_checkpoint"))
    }


def engine_info(config: dict, kind: str, name: str, project_dir: Path) -> EngineInfo:
    """Availability of engine `name` of `kind` ("tts" or "lipsync").

    An engine is available when the package registers it and, for engines that need weights,
    every `checkpoint` / `*_checkpoint` path of its settings block exists.
    """
    block = {
        **engine_defaults(kind, name),
        **((config.get("defaults", {}).get(kind) or {}).get(name) or {}),
    }
    checkpoints = {
        key: {"path": str(resolve(value, project_dir)),
              "present": resolve(value, project_dir).is_file()}
        for key, value in _checkpoint_keys(block).items()
    }
    reason = None
    if name not in registered_engines(kind):
        reason = f"the {kind} engine '{name}' is not part of this installation"
    elif name in WEIGHTED_ENGINES[kind] and not checkpoints:
        reason = f"no checkpoint configured (defaults.{kind}.{name}.checkpoint)"
    else:
        missing = [c["path"] for c in checkpoints.values() if not c["present"]]
        if missing:
            reason = f"checkpoint not found: {', '.join(missing)}"
    return EngineInfo(kind, name, reason is None, reason, checkpoints)


def all_engines(config: dict, project_dir: Path) -> dict[str, dict[str, EngineInfo]]:
    """Every registered engine plus the weighted ones the API knows, by kind."""
    result = {}
    for kind in ("tts", "lipsync"):
        names = dict.fromkeys([*registered_engines(kind), *sorted(WEIGHTED_ENGINES[kind])])
        result[kind] = {name: engine_info(config, kind, name, project_dir) for name in names}
    return result


def gan_engine(config: dict, project_dir: Path) -> tuple[str, str]:
    """The lip-sync engine `use_only_gan: true` gets, and a sentence saying why."""
    info = engine_info(config, "lipsync", NEURAL_LIPSYNC, project_dir)
    if info.available:
        return NEURAL_LIPSYNC, f"{NEURAL_LIPSYNC} checkpoint present"
    reason = f"{NEURAL_LIPSYNC} unavailable ({info.reason}); using {FALLBACK_LIPSYNC}"
    return FALLBACK_LIPSYNC, reason


def avatars(folders: tuple[Path, ...]) -> dict[str, Path]:
    """The avatar whitelist: image and video files under the given folders, by request name.

    Names are paths relative to their folder ("avatar.png", "faces/anna.jpg"); a request can
    only pick one of these names, never give a path of its own. Hidden files and folders are
    skipped; the first folder wins when two hold the same name.
    """
    suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    found: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if any(part.startswith(".") for part in relative.parts):
                continue
            if path.is_file() and path.suffix.lower() in suffixes:
                found.setdefault(relative.as_posix(), path.resolve())
    return found


def default_avatar_name(config: dict, project_dir: Path, whitelist: dict[str, Path]) -> str | None:
    """The whitelist name of the config's default avatar, if it is in the whitelist."""
    default = resolve(config.get("defaults", {}).get("avatar", ""), project_dir).resolve()
    return next((name for name, path in whitelist.items() if path == default), None)


@dataclass
class GpuSlots:
    """The device slots of the `gpu:` block, resolved as vestnik.slots resolves them."""

    devices: list[str]
    keys: list[str]
    per_device: int
    lock_dir: Path
    note: str

    @property
    def total(self) -> int:
        return len(self.devices) * self.per_device

    def in_use(self) -> int:
        """Slots held right now by any process on this machine (service runs or not)."""
        if not self.devices:
            return 0
        from vestnik.slots import held_slots

        return len(held_slots(self.devices, self.per_device, self.lock_dir, self.keys))


def gpu_slots(config: dict) -> GpuSlots:
    """Resolve the `gpu:` block (devices, slots_per_device, lock_dir) to slots.

    Resolving "auto" devices imports torch, so call this once at start-up; without torch or
    CUDA there are no slots and GPU engines run on the CPU.
    """
    from vestnik import slots

    gpu = config.get("gpu") or {}
    per_device = int(gpu.get("slots_per_device", slots.DEFAULT_SLOTS_PER_DEVICE))
    lock_dir = Path(gpu.get("lock_dir") or slots.default_lock_dir())
    try:
        devices, keys = slots.cuda_devices(gpu.get("devices", "auto"))
        note = f"{len(devices)} CUDA device(s) x {per_device} slot(s)" if devices else "no CUDA"
    except ImportError:
        devices, keys, note = [], [], "torch is not installed"
    return GpuSlots(devices, keys, per_device, lock_dir, note)
