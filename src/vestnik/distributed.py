"""Training on several processes with PyTorch's DistributedDataParallel, started by torchrun.

An experiment with `world_size: N > 1` is trained by N processes (ranks): `launch` starts
`torchrun` (gloo on the CPU, NCCL on CUDA, one GPU per rank), and every rank runs the same
training loop on its share of every batch. The global batch is the experiment's `batch_size`
whatever N is; each rank takes `batch_size / N` rows of it, and gradients are averaged over the
ranks, so N changes speed, not the recipe. Only rank 0 writes checkpoints, logs, samples and
the exported model; checkpoints hold plain (unwrapped) weights, so they resume with any N.

A rank that dies (SIGKILL included) makes torchrun stop the others, and collectives time out
after `COLLECTIVE_TIMEOUT`, so no rank hangs; the rerun resumes from the last checkpoint.
"""

from __future__ import annotations

import datetime
import importlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vestnik.errors import VestnikError

log = logging.getLogger("vestnik.training")

COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=10)
"""How long a rank waits in a collective (an all-reduce, a barrier) before giving up."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes training one experiment."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 writes everything a run leaves behind."""
        return self.rank == 0

    def share(self, rows: Sequence[Any]) -> list[Any]:
        """This rank's rows of a global batch: every `world`-th from `rank` (lengths stay mixed
        evenly when the batch is sorted by length)."""
        return list(rows[self.rank :: self.world])

    def mean(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """Metrics averaged over the ranks (each rank's over an equal share of the batch)."""
        if self.world == 1:
            return dict(metrics)
        values = torch.tensor(list(metrics.values()), dtype=torch.float64)
        torch.distributed.all_reduce(values)
        return {key: float(v) / self.world for key, v in zip(metrics, values, strict=True)}

    def weights(self, counts: Mapping[str, float]) -> dict[str, float]:
        """Per count (e.g. frames in this rank's rows): this rank's share relative to the mean
        rank. A loss averaged over this rank's frames, times its weight, averages over the ranks
        to the loss averaged over all the batch's frames, as on one process."""
        if self.world == 1:
            return dict.fromkeys(counts, 1.0)
        totals = torch.tensor([float(v) for v in counts.values()], dtype=torch.float64)
        torch.distributed.all_reduce(totals)
        return {key: self.world * float(counts[key]) / float(total)
                for key, total in zip(counts, totals, strict=True)}

    def gather(self, obj: Any) -> list[Any]:
        """`obj` of every rank, in rank order (a plain list of one on a single process)."""
        if self.world == 1:
            return [obj]
        buffer = io.BytesIO()
        torch.save(obj, buffer)  # all_gather_object cannot carry tensors' storages itself
        blobs: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(blobs, buffer.getvalue())
        return [torch.load(io.BytesIO(blob), weights_only=True) for blob in blobs]

    def average_gradients(self, module: torch.nn.Module) -> None:
        """Average `module`'s gradients over the ranks, for a module whose forwards and
        backwards do not pair up the way DistributedDataParallel needs."""
        if self.world == 1:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` in DistributedDataParallel when there are several ranks, else itself."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        device = next(module.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)


SINGLE = Ranks()
"""A run on one process."""


def current() -> Ranks:
    """The ranks torchrun set up for this process (one rank outside torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return SINGLE
    return Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def uses_cuda(config: Mapping[str, Any]) -> bool:
    """Whether the experiment's ranks run on GPUs (its `device`, with "auto" meaning CUDA
    when present)."""
    device = str(config["device"])
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def check_settings(kind: str, name: str, config: Mapping[str, Any]) -> None:
    """Refuse, before anything is trained, settings that N ranks cannot run."""
    world = config["world_size"]
    where = f"{kind} experiment '{name}'"
    if world < 1:
        raise VestnikError(f"{where}: world_size must be at least 1, not {world}")
    if config["batch_size"] % world:
        raise VestnikError(
            f"{where}: batch_size {config['batch_size']} does not divide over world_size {world}"
        )
    if world == 1:
        return
    if str(config["device"]).startswith("cuda") and not torch.cuda.is_available():
        raise VestnikError(f"{where}: device {config['device']} (NCCL) asked for, but this "
                           "machine has no CUDA device; use device: cpu (gloo)")
    if str(config["device"]) not in ("auto", "cpu", "cuda"):
        raise VestnikError(f"{where}: with world_size {world} the ranks take cuda:0..{world - 1};"
                           f" device must be auto, cpu or cuda, not {config['device']}")
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world))  # torchrun's ranks on this node
    if uses_cuda(config) and per_node > torch.cuda.device_count():
        raise VestnikError(f"{where}: {per_node} ranks on this node but only "
                           f"{torch.cuda.device_count()} CUDA devices")


def rank_device(config: Mapping[str, Any], ranks: Ranks) -> torch.device:
    """One GPU per rank on CUDA, else the CPU."""
    if uses_cuda(config):
        torch.cuda.set_device(ranks.local_rank)
        return torch.device("cuda", ranks.local_rank)
    return torch.device("cpu")


def init(config: Mapping[str, Any], ranks: Ranks) -> None:
    """Join the process group (NCCL on CUDA, gloo on the CPU)."""
    backend = "nccl" if uses_cuda(config) else "gloo"
    torch.distributed.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
    log.info("rank %d of %d joined (%s)", ranks.rank, ranks.world, backend)


def launch(recipe: str, name: str, config: Mapping[str, Any], data: Sequence[str | os.PathLike],
           out_dir: Path, threads: int | None) -> None:
    """Run `torchrun` with the experiment's world_size ranks on this node and wait for it.

    The ranks' output goes to this process's log, line by line; a failed rank fails the run.
    """
    world = config["world_size"]
    spec = {"recipe": recipe, "name": name, "config": dict(config),
            "data": [str(path) for path in data], "out_dir": str(out_dir),
            "threads": max(1, threads // world) if threads else None}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={world}", "-m", "vestnik.distributed", json.dumps(spec)]
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"] or 1)}
    log.info("%s: starting %d ranks with torchrun, spec %s", name, world, command[-1])
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1, preexec_fn=_stop_with_parent) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.info("%s", line.rstrip())
        code = proc.wait()
    if code != 0:
        raise VestnikError(f"experiment '{name}': training ranks failed (torchrun exit code "
                           f"{code}); the log holds their output, a rerun resumes")


def _stop_with_parent() -> None:
    """In torchrun's process: SIGTERM when the launching job dies (SIGKILL included), which
    torchrun passes on to its ranks, so a killed job leaves no ranks training behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _worker(argv: Sequence[str]) -> None:
    """One rank (run by torchrun): train the experiment described by the JSON in argv[0]."""
    spec = json.loads(argv[0])
    rank = current().rank
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, stream=sys.stdout,
                        format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s")
    module, _, attribute = spec["recipe"].partition(":")
    recipe_type = getattr(importlib.import_module(module), attribute)
    from vestnik.training import train_experiment

    train_experiment(recipe_type, spec["name"], spec["config"], tuple(spec["data"]),
                     spec["out_dir"], spec["threads"])


if __name__ == "__main__":
    _worker(sys.argv[1:])
