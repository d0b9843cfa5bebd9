"""What the service can offer: engines and their checkpoints, avatars, and GPU slots.

Everything here is read from the workflow config and the file system on each call (cheap
stats), so the health endpoint reflects a checkpoint copied in while the service runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from vestnik import engines
from vestnik.avatar import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from vestnik.config import block_settings, engine_settings
from vestnik.errors import VestnikError

NEURAL_LIPSYNC = "wav2lip"
"""The lip-sync engine `use_only_gan: true` asks for (the GAN-trained Wav2Lip network)."""
FALLBACK_LIPSYNC = "procedural"
"""The engine used when the neural one is not available, and for `use_only_gan: false`."""
@dataclass
class EngineInfo:
    """One engine as the service sees it: whether a request may choose it, and why not.

    `checkpoints` maps each setting that names a weights file to its absolute path and
    whether it exists; a job using the engine gets these absolute paths pinned in its
    settings, so a run folder never looks for (or trains) models of its own.
    """

    kind: str
    name: str
    available: bool
    reason: str | None
    checkpoints: dict[str, dict]

    def as_dict(self) -> dict:
        return asdict(self)

    def pinned(self) -> dict:
        """Job settings override for this engine: its weight files as absolute paths."""
        if not self.checkpoints:
            return {}
        return {self.name: {key: c["path"] for key, c in self.checkpoints.items()}}


def resolve(path: str | Path, project_dir: Path) -> Path:
    """A config path as the workflow sees it: relative paths are relative to the project."""
    path = Path(path)
    return path if path.is_absolute() else project_dir / path


def engine_info(config: dict, kind: str, name: str, project_dir: Path) -> EngineInfo:
    """Availability of engine `name` of `kind` ("tts" or "lipsync").

    An engine is available when the package registers it and, for engines that need weights,
    every weights file its settings name exists. The service never trains: a neural TTS
    experiment that has not been trained (`snakemake train`) leaves the engine unavailable.
    """
    if name not in engines.names(kind):
        reason = f"the {kind} engine '{name}' is not part of this installation"
        return EngineInfo(kind, name, False, reason, {})
    spec = engines.engine(kind, name)
    if not spec.needs_weights:
        return EngineInfo(kind, name, True, None, {})
    block = (config.get("defaults", {}).get(kind) or {}).get(name) or {}
    try:
        named = {key: w.path for key, w in spec.weights(engine_settings(kind, name, block)).items()}
    except VestnikError as exc:
        return EngineInfo(kind, name, False, str(exc), {})
    checkpoints = {
        key: {"path": str(resolve(value, project_dir).resolve()),
              "present": resolve(value, project_dir).is_file()}
        for key, value in named.items()
    }
    reason = None
    if not checkpoints:
        reason = f"no weights file configured in defaults.{kind}.{name}"
    else:
        missing = [c["path"] for c in checkpoints.values() if not c["present"]]
        if missing:
            reason = f"weights not found: {', '.join(missing)}"
    return EngineInfo(kind, name, reason is None, reason, checkpoints)


def all_engines(config: dict, project_dir: Path) -> dict[str, dict[str, EngineInfo]]:
    """Every registered engine, by kind."""
    return {
        kind: {name: engine_info(config, kind, name, project_dir) for name in engines.names(kind)}
        for kind in engines.KINDS
    }


def gan_engine(config: dict, project_dir: Path) -> tuple[str, str]:
    """The lip-sync engine `use_only_gan: true` gets, and a sentence saying why."""
    info = engine_info(config, "lipsync", NEURAL_LIPSYNC, project_dir)
    if info.available:
        return NEURAL_LIPSYNC, f"{NEURAL_LIPSYNC} checkpoint present"
    reason = f"{NEURAL_LIPSYNC} unavailable ({info.reason}); using {FALLBACK_LIPSYNC}"
    return FALLBACK_LIPSYNC, reason


def avatars(folders: tuple[Path, ...]) -> dict[str, Path]:
    """The avatar whitelist: image and video files directly inside the given folders.

    A request can only pick one of these names ("avatar.png"), never give a path of its own.
    Sub-folders are not searched (resources/ also holds models and corpora), hidden files are
    skipped, and the first folder wins when two hold the same name.
    """
    suffixes = IMAGE_SUFFIXES | VIDEO_SUFFIXES
    found: dict[str, Path] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in suffixes:
                continue
            if path.is_file():
                found.setdefault(path.name, path.resolve())
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

    gpu = block_settings("gpu", config.get("gpu"))
    per_device = gpu["slots_per_device"]
    lock_dir = Path(gpu["lock_dir"] or slots.default_lock_dir())
    try:
        devices, keys = slots.cuda_devices(gpu["devices"])
        note = f"{len(devices)} CUDA device(s) x {per_device} slot(s)" if devices else "no CUDA"
    except ImportError:
        devices, keys, note = [], [], "torch is not installed"
    return GpuSlots(devices, keys, per_device, lock_dir, note)
