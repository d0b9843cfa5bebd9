"""Disk and device faults: a full disk or a file-size limit fails the write with a message naming
the file and leaves nothing behind; a GPU job without CUDA runs on the CPU or, when the config
requires a GPU, fails clearly; device slots and checkpoints survive crashed writers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from vestnik import slots
from vestnik.errors import VestnikError
from vestnik.io import remove_stale_temps

from .workflow_helpers import ROOT, Run, base_config, temp_files

# ------------------------------------------------------------------------------------------------
# A process whose files may not grow beyond 40 kB (RLIMIT_FSIZE): works without root.

WRITER = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))
    from vestnik import io, media
    from vestnik.errors import VestnikError
    folder, what = sys.argv[1], sys.argv[2]
    try:
        if what == "wav":
            media.write_wav(f"{folder}/speech.wav", np.zeros(80_000, np.float32), 22050)
        elif what == "json":
            io.write_json(f"{folder}/stats.json", {"x": "y" * 100_000})
        elif what == "mp4":
            rng = np.random.default_rng(0)
            with media.FrameWriter(f"{folder}/0.mp4", 128, 128, 25) as writer:
                for _ in range(50):
                    writer.write(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8))
        elif what == "checkpoint":
            import torch
            from vestnik.training import save_atomic
            save_atomic(f"{folder}/step_000000002.pt", {"w": torch.zeros(50_000)})
    except VestnikError as exc:
        print(json.dumps(str(exc)))
        sys.exit(3)
    """
)


@pytest.mark.parametrize(
    ("what", "name"),
    [("wav", "speech.wav"), ("json", "stats.json"), ("mp4", "0.mp4"),
     ("checkpoint", "step_000000002.pt")],
)
def test_file_size_limit_fails_clearly_and_leaves_nothing(tmp_path, what, name):
    if what == "checkpoint":
        pytest.importorskip("torch")
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path), what], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=120,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    message = json.loads(proc.stdout.strip().splitlines()[-1])
    assert message.startswith(f"file '{tmp_path / name}': could not write the file")
    assert "free some space" in message
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# A real full disk: results/ on a 256 kB tmpfs (needs root and tmpfs; skipped otherwise).


@pytest.fixture
def small_disk(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(results)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mount.stderr.strip()}")
    try:
        yield tmp_path
    finally:
        subprocess.run(["umount", "-l", str(results)], check=False)


@pytest.mark.slow
def test_full_disk_fails_clearly_then_a_rerun_with_room_completes(small_disk):
    workdir = small_disk
    config = base_config(
        {"a": {"text": "Здравствуйте! Сегодня хорошая погода, и мы идём гулять.",
               "chunks": {"workers": 2, "min_seconds": 1.0}}}
    )
    targets = ("results/jobs/a/final.mp4",)
    run = Run(workdir, config, *targets)
    assert run.finish() != 0
    output = run.text()
    failed = set(re.findall(r"file '([^']+)': could not write the file: ", output))
    for path in failed:
        assert not (workdir / path).exists(), path
    assert failed, output[-3000:]
    assert "No space left on device" in output and "free some space and run again" in output
    assert temp_files(workdir / "results") == []
    assert not (workdir / "results/jobs/a/final.mp4").exists()

    subprocess.run(["mount", "-o", "remount,size=64m", str(workdir / "results")], check=True)
    rerun = Run(workdir, config, *targets)
    assert rerun.finish() == 0, rerun.text()[-3000:]
    assert (workdir / "results/jobs/a/final.mp4").stat().st_size > 0
    assert temp_files(workdir / "results") == []


# ------------------------------------------------------------------------------------------------
# GPU jobs without CUDA


def test_gpu_job_without_cuda_runs_on_the_cpu_with_a_warning(tmp_path, caplog, no_cuda):
    with slots.device_slot({"lock_dir": str(tmp_path)}, job="demo") as device:
        assert device == "cpu"
    assert "no CUDA device available: running on the CPU" in caplog.text


def test_gpu_required_but_missing_fails_clearly(tmp_path, no_cuda):
    from vestnik.training import training_device

    with pytest.raises(VestnikError, match=r"job 'demo'.*gpu\.require is true but no CUDA"), \
            slots.device_slot({"require": True, "lock_dir": str(tmp_path)}, job="demo"):
        pass
    with pytest.raises(VestnikError, match="gpu.require"), \
            training_device("auto", {"require": True}, job="vocoder x"):
        pass


# ------------------------------------------------------------------------------------------------
# Device slots and checkpoints after crashes


HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from vestnik import slots
    lease = slots.try_acquire(["cuda:0"], 1, sys.argv[1])
    assert lease is not None
    if os.fork() == 0:  # a child (an encoder, a data loader) inherits the lock
        time.sleep(600)
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_slot_of_a_killed_process_tree_is_free_again(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "held"
        assert slots.try_acquire(["cuda:0"], 1, tmp_path) is None
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lock = tmp_path / "cuda_0.slot0.lock"
    assert lock.read_text().split()[0] == str(proc.pid)  # stale content does not matter
    with slots.acquire(["cuda:0"], 1, tmp_path, wait=5, poll=0.05) as lease:
        assert lease.slot.index == 0
        assert lock.read_text().split()[0] == str(os.getpid())


def test_half_written_and_truncated_checkpoints_are_never_loaded(tmp_path):
    torch = pytest.importorskip("torch")
    from vestnik.training import Checkpoints

    folder = tmp_path / "checkpoints"
    checkpoints = Checkpoints(folder, keep_last=5)
    for step in (2, 4):
        checkpoints.save(step, {"step": step, "w": torch.full((1000,), float(step))})
    newest = checkpoints.path(4)
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a torn write
    (folder / ".step_000000006.a1b2c3d4.tmp.pt").write_bytes(b"half")  # a killed writer's temp
    reopened = Checkpoints(folder, keep_last=5)
    assert temp_files(folder) == []
    state = reopened.load_latest()
    assert state["step"] == 2 and torch.equal(state["w"], torch.full((1000,), 2.0))


def test_only_the_outputs_own_temporary_files_are_removed(tmp_path):
    names = [".0.a1b2c3d4.tmp.mp4", ".0.5.a1b2c3d4.tmp.mp4", ".0.a1b2c3d4.tmp.wav", "0.mp4",
             ".0.short.tmp.mp4", ".final.zz_9yy8x.tmp.mp4"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    removed = remove_stale_temps([tmp_path / "0.mp4", tmp_path / "final.mp4"])
    assert sorted(p.name for p in removed) == [".0.a1b2c3d4.tmp.mp4", ".final.zz_9yy8x.tmp.mp4"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [".0.5.a1b2c3d4.tmp.mp4", ".0.a1b2c3d4.tmp.wav", "0.mp4", ".0.short.tmp.mp4"]
    )


# ------------------------------------------------------------------------------------------------
# The encoder never stalls on its own report


ENCODE = textwrap.dedent(
    """
    import numpy as np
    from vestnik.media import FrameWriter
    with FrameWriter("{out}", 64, 64, 25) as writer:
        for i in range(400):
            writer.write(np.full((64, 64, 3), i % 255, np.uint8))
    print(writer.frames)
    """
)


def test_a_chatty_ffmpeg_does_not_stall_the_frame_writer(tmp_path):
    """ffmpeg writes a progress line twice a second; read through an unread pipe, 64 KiB of them
    (minutes of encoding, or seconds at -loglevel debug) blocked the encoder for ever."""
    from vestnik.media import ffmpeg_exe

    chatty = tmp_path / "ffmpeg-debug"
    chatty.write_text(f'#!/bin/sh\nexec "{ffmpeg_exe()}" -loglevel debug "$@"\n')
    chatty.chmod(0o755)
    out = tmp_path / "out.mp4"
    proc = subprocess.run(
        [sys.executable, "-c", ENCODE.format(out=out)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "VESTNIK_FFMPEG": str(chatty)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "400"
    from vestnik.media import probe

    assert probe(out)["video_frames"] == 400
