"""Device slots: spread over devices, never over capacity, freed on every exit (SIGKILL too)."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vestnik import slots
from vestnik.errors import VestnikError

ROOT = Path(__file__).resolve().parents[1]


def test_slot_major_order_spreads_over_devices(tmp_path):
    devices = ["cuda:0", "cuda:1", "cuda:2"]
    leases = [slots.try_acquire(devices, 2, tmp_path) for _ in range(6)]
    assert [lease.device for lease in leases] == devices * 2
    assert [lease.slot.index for lease in leases] == [0, 0, 0, 1, 1, 1]
    assert slots.try_acquire(devices, 2, tmp_path) is None
    leases[4].release()
    again = slots.try_acquire(devices, 2, tmp_path)
    assert (again.device, again.slot.index) == ("cuda:1", 1)
    for lease in [*leases, again]:
        lease.release()
    assert slots.held_slots(devices, 2, tmp_path) == []


def test_one_device_shares_its_slots(tmp_path):
    with (
        slots.try_acquire(["cuda:0"], 3, tmp_path) as a,
        slots.try_acquire(["cuda:0"], 3, tmp_path) as b,
        slots.try_acquire(["cuda:0"], 3, tmp_path) as c,
    ):
        assert {a.slot.index, b.slot.index, c.slot.index} == {0, 1, 2}
        assert {a.device, b.device, c.device} == {"cuda:0"}
        assert slots.try_acquire(["cuda:0"], 3, tmp_path) is None
        assert len(slots.held_slots(["cuda:0"], 3, tmp_path)) == 3
    assert not a.held and slots.held_slots(["cuda:0"], 3, tmp_path) == []


def test_lock_keys_name_the_files(tmp_path):
    with slots.try_acquire(["cuda:0"], 1, tmp_path, keys=["gpu-1234/abcd"]) as lease:
        assert lease.device == "cuda:0"
        assert lease.slot.path.name == "gpu-1234_abcd.slot0.lock"
        assert lease.slot.path.read_text().split()[0] == str(os.getpid())


def test_acquire_gives_up_after_waiting(tmp_path):
    with slots.try_acquire(["cuda:0"], 1, tmp_path):
        started = time.monotonic()
        with pytest.raises(VestnikError, match="no free device slot"):
            slots.acquire(["cuda:0"], 1, tmp_path, wait=0.3, poll=0.05, job="demo")
        assert time.monotonic() - started >= 0.3


def test_no_cuda_runs_on_cpu(tmp_path, no_cuda):
    with slots.device_slot({"devices": "auto", "lock_dir": str(tmp_path)}) as device:
        assert device == "cpu"
    assert list(tmp_path.iterdir()) == []


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from vestnik import slots
    lock_dir, hold, devices, per_device = sys.argv[1:5]
    with slots.acquire(devices.split(","), int(per_device), lock_dir, wait=60, poll=0.02) as lease:
        start = time.time()
        print("acquired", flush=True)
        time.sleep(float(hold))
        end = time.time()
    print(json.dumps({"device": lease.device, "slot": lease.slot.index, "start": start,
                      "end": end}), flush=True)
    """
)


def _spawn(lock_dir: Path, hold: float, devices: str, per_device: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(lock_dir), str(hold), devices, str(per_device)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize(("devices", "per_device"), [("cuda:0", 3), ("cuda:0,cuda:1,cuda:2", 1)])
def test_concurrent_jobs_never_exceed_capacity(tmp_path, devices, per_device):
    procs = [_spawn(tmp_path, 0.4, devices, per_device) for _ in range(7)]
    records = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        records.append(json.loads(out.strip().splitlines()[-1]))
    capacity = len(devices.split(",")) * per_device
    events = sorted(
        [(r["start"], 1, r) for r in records] + [(r["end"], -1, r) for r in records],
        key=lambda e: (e[0], e[1]),
    )
    running: list[dict] = []
    for _, kind, record in events:
        if kind == 1:
            key = (record["device"], record["slot"])
            assert key not in [(r["device"], r["slot"]) for r in running], "slot held twice"
            running.append(record)
            assert len(running) <= capacity
            for device in devices.split(","):
                assert sum(r["device"] == device for r in running) <= per_device
        else:
            running.remove(record)
    assert {r["device"] for r in records} == set(devices.split(","))


def test_sigkill_frees_the_slot(tmp_path):
    proc = _spawn(tmp_path, 600, "cuda:0", 1)
    try:
        assert proc.stdout.readline().strip() == "acquired"
        assert [s.index for s in slots.held_slots(["cuda:0"], 1, tmp_path)] == [0]
        assert slots.try_acquire(["cuda:0"], 1, tmp_path) is None
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert slots.held_slots(["cuda:0"], 1, tmp_path) == []
    with slots.try_acquire(["cuda:0"], 1, tmp_path) as lease:
        assert lease is not None and lease.slot.index == 0
