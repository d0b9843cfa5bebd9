"""The HTTP service against a real server (`vestnik serve` in a subprocess on a loopback port).

Jobs run the real workflow, so every video here was rendered by Snakemake; texts are short to
keep the file fast.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from vestnik import media
from vestnik.cli import build_parser
from vestnik.service.jobs import MARKER, Job, JobManager, JobRequest
from vestnik.service.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
FPS = 25
TIMEOUT = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`vestnik serve` on 127.0.0.1 and a free port, stopped with SIGTERM."""

    def __init__(self, runs_dir: Path, *options: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = runs_dir.with_suffix(".log")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        command = [
            sys.executable, "-m", "vestnik.cli", "serve", "--port", str(self.port),
            "--runs-dir", str(runs_dir), *options,
        ]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.client = httpx.Client(base_url=self.url, timeout=TIMEOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.get("/api/health")
                break
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.log.read_text()) from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """An extra avatar folder holding one image without a face."""
    import cv2

    folder = tmp_path_factory.mktemp("faces")
    cv2.imwrite(str(folder / "wall.png"), np.full((240, 320, 3), 128, np.uint8))
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, faces):
    """Two concurrent runs, one core each, short limits."""
    runs = tmp_path_factory.mktemp("service") / "runs"
    server = Server(
        runs, "--concurrency", "2", "--queue-size", "2", "--cores-per-run", "1",
        "--max-text-chars", "200", "--max-workers", "4", "--max-body-bytes", "4096",
        "--avatars-dir", str(faces),
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One run at a time and a waiting queue of one."""
    server = Server(
        tmp_path_factory.mktemp("single") / "runs", "--concurrency", "1", "--queue-size", "1",
    )
    yield server
    server.stop()


def generate(server: Server, accept: str | None = None, **body) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return server.client.post("/api/generate_parallel", json=body, headers=headers)


def check_video(path: Path, stats: dict) -> dict:
    """A playable H.264 + audio mp4 as long as the job's speech."""
    info = media.probe(path)
    kinds = sorted(s["type"] for s in info["streams"])
    assert kinds == ["audio", "video"]
    (video,) = [s for s in info["streams"] if s["type"] == "video"]
    assert video["codec"] == "h264" and video["pix_fmt"] == "yuv420p" and video["fps"] == FPS
    assert abs(info["duration"] - stats["speech_seconds"]) <= 1.5 / FPS
    assert abs(info["video_frames"] / FPS - stats["speech_seconds"]) <= 1.5 / FPS
    return info


def wait_done(server: Server, job_id: str, timeout: float = TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = server.client.get(f"/api/jobs/{job_id}").json()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {status['status']}")


def test_openapi_describes_the_original_api(server):
    schema = server.client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/api/generate_parallel", "/api/health", "/api/jobs", "/api/jobs/{job_id}",
            "/api/jobs/{job_id}/video"} <= set(paths)
    generate_op = paths["/api/generate_parallel"]["post"]
    assert "video/mp4" in generate_op["responses"]["200"]["content"]
    assert {"422", "429", "413"} <= set(generate_op["responses"])
    body = schema["components"]["schemas"]["GenerateRequest"]
    assert body["required"] == ["text"]
    props = body["properties"]
    assert props["language"]["default"] == "ru"
    assert props["num_workers"]["default"] == 3
    assert props["use_only_gan"]["default"] is True
    assert body["additionalProperties"] is False
    assert paths["/api/jobs"]["post"]["responses"]["202"]

    def refs(node):
        if isinstance(node, dict):
            yield from ([node["$ref"]] if "$ref" in node else [])
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    names = {f"#/components/schemas/{name}" for name in schema["components"]["schemas"]}
    assert set(refs(schema)) <= names


def test_health_reports_engines_avatars_and_limits(server):
    response = server.client.get("/api/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ready", health["problems"]
    assert health["engines"]["tts"]["espeak"]["available"]
    assert health["engines"]["lipsync"]["procedural"]["available"]
    wav2lip = health["engines"]["lipsync"]["wav2lip"]
    assert health["use_only_gan"]["engine"] == ("wav2lip" if wav2lip["available"] else "procedural")
    assert health["avatars"]["default"] == "avatar.png"
    assert "wall.png" in health["avatars"]["available"]
    assert health["jobs"]["concurrency"] == 2 and health["jobs"]["queue_limit"] == 2
    assert health["jobs"]["cores_per_run"] == 1
    gpu = health["gpu"]
    assert gpu["slots_configured"] == len(gpu["devices"]) * gpu["slots_per_device"]
    assert 0 <= gpu["slots_in_use"] <= gpu["slots_configured"]
    assert health["limits"]["max_text_chars"] == 200


def test_serve_binds_loopback_by_default():
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 3000


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"text": ""}, 422, "text: is empty"),
        ({"text": "   \n"}, 422, "text: is empty"),
        ({"text": "... !!! ---"}, 422, "nothing speakable"),
        ({"text": "Привет\x00"}, 422, "control characters"),
        ({"text": "Привет." * 40}, 422, "the limit is 200"),
        ({"text": "Привет.", "language": "en"}, 422, "'en' is not supported"),
        ({"text": "Привет.", "num_workers": 0}, 422, "num_workers: must be between 1 and 4"),
        ({"text": "Привет.", "num_workers": 9}, 422, "num_workers: must be between 1 and 4"),
        ({"text": "Привет.", "num_workers": "3"}, 422, "num_workers: Input should be"),
        ({"text": "Привет.", "num_workers": 2.5}, 422, "num_workers: Input should be"),
        ({"text": "Привет.", "use_only_gan": "yes"}, 422, "use_only_gan: Input should be"),
        ({"language": "ru"}, 422, "text: required"),
        ({"text": "Привет.", "voice": "x"}, 422, "voice: unknown field"),
        ({"text": "Привет.", "avatar": "../config/config.yaml"}, 422, "unknown avatar"),
        ({"text": "Привет.", "avatar": "/etc/passwd"}, 422, "unknown avatar"),
        ({"text": "Привет.", "lipsync_engine": "puppet"}, 422, "unknown engine 'puppet'"),
        ({"text": "Привет.", "tts_engine": "festival"}, 422, "unknown engine 'festival'"),
    ],
)
def test_bad_requests_get_clear_4xx(server, body, status, message):
    before = server.client.get("/api/health").json()["jobs"]
    response = generate(server, **body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    after = server.client.get("/api/health").json()["jobs"]
    assert after["running"] + after["queued"] + after["finished"] == (
        before["running"] + before["queued"] + before["finished"]
    )


def test_malformed_and_oversized_bodies(server):
    json_type = {"Content-Type": "application/json"}
    broken = b'{"text": "abc'
    response = server.client.post("/api/generate_parallel", content=broken, headers=json_type)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    big = json.dumps({"text": "а" * 5000}).encode()
    response = server.client.post("/api/generate_parallel", content=big, headers=json_type)
    assert response.status_code == 413 and "4096 bytes" in response.json()["error"]
    assert server.client.get("/api/jobs/nonexistent").status_code == 404


@pytest.mark.slow
def test_generate_returns_playable_mp4_with_stats(server, tmp_path):
    response = generate(server, text="Привет.", language="ru", num_workers=1, use_only_gan=True)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    stats = json.loads(response.headers["x-vestnik-stats"])
    job_id = response.headers["x-vestnik-job"]
    assert stats["job"] == job_id and stats["chunks"] == 1
    seconds = stats["seconds"]
    stages = ("tts", "plan", "split", "lipsync_parallel", "merge")
    assert all(seconds[stage] > 0 for stage in stages), seconds  # every stage ran and was timed
    assert seconds["total"] == pytest.approx(sum(seconds[stage] for stage in stages), abs=0.01)
    assert stats["service"]["workflow_seconds"] >= stats["seconds"]["total"] > 0
    path = tmp_path / "out.mp4"
    path.write_bytes(response.content)
    check_video(path, stats)
    status = server.client.get(f"/api/jobs/{job_id}").json()
    assert status["status"] == "done" and status["stats"] == stats
    assert status["request"]["lipsync_engine"] == stats["engine"]
    download = server.client.get(status["video_url"])
    assert download.status_code == 200 and download.content == response.content


@pytest.mark.slow
def test_concurrent_requests_complete_without_mixing(server, tmp_path):
    long_text = "Добрый вечер. Сегодня в Москве тепло и ясно, а завтра ожидается небольшой дождь."
    texts = {"short": ("Привет.", 1), "long": (long_text, 2)}
    results: dict[str, httpx.Response] = {}

    def call(name: str) -> None:
        text, workers = texts[name]
        accept = "application/json" if name == "long" else None
        results[name] = generate(server, accept, text=text, num_workers=workers)

    threads = [threading.Thread(target=call, args=(name,)) for name in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    short, long = results["short"], results["long"]
    assert short.status_code == 200 and long.status_code == 200, (short.text, long.text[:500])
    short_stats = json.loads(short.headers["x-vestnik-stats"])
    long_status = long.json()
    long_stats = long_status["stats"]
    assert short_stats["job"] != long_stats["job"]
    assert (short_stats["chunks"], long_stats["chunks"]) == (1, 2)
    assert long_status["request"]["text_chars"] == len(texts["long"][0])
    (tmp_path / "short.mp4").write_bytes(short.content)
    (tmp_path / "long.mp4").write_bytes(server.client.get(long_status["video_url"]).content)
    short_info = check_video(tmp_path / "short.mp4", short_stats)
    long_info = check_video(tmp_path / "long.mp4", long_stats)
    assert long_info["duration"] > short_info["duration"] + 1
    jobs = [server.client.get(f"/api/jobs/{s['job']}").json() for s in (short_stats, long_stats)]
    first, second = sorted(jobs, key=lambda j: j["started_at"])
    assert second["started_at"] < first["finished_at"], "the two runs did not overlap"


@pytest.mark.slow
def test_async_job_and_health_while_running(server):
    response = server.client.post("/api/jobs", json={"text": "Привет.", "num_workers": 1})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == job["status_url"] == f"/api/jobs/{job['job_id']}"
    assert job["status"] == "running"
    health = server.client.get("/api/health").json()
    assert health["jobs"]["running"] >= 1
    early = server.client.get(job["video_url"])
    assert early.status_code == 409 and "running" in early.json()["error"]
    status = wait_done(server, job["job_id"])
    assert status["status"] == "done", status
    assert server.client.get(job["video_url"]).headers["content-type"] == "video/mp4"
    assert server.client.get("/api/health").json()["jobs"]["running"] == 0


@pytest.mark.slow
def test_input_the_workflow_refuses_is_a_422_naming_the_problem(server):
    response = generate(server, text="Привет.", num_workers=1, avatar="wall.png")
    assert response.status_code == 422, response.text
    error = response.json()
    assert "no face" in error["error"] and "wall.png" in error["error"]
    status = server.client.get(f"/api/jobs/{error['job_id']}").json()
    assert status["status"] == "failed" and status["error_kind"] == "input"
    assert status["request"]["avatar"] == "wall.png"


@pytest.mark.slow
def test_full_queue_gets_429(single):
    client = single.client
    first = client.post("/api/jobs", json={"text": "Привет.", "num_workers": 1}).json()
    second = client.post("/api/jobs", json={"text": "Привет.", "num_workers": 1}).json()
    assert first["status"] == "running"
    assert second["status"] == "queued" and second["queue_position"] == 1
    refused = generate(single, text="Привет.", num_workers=1)
    assert refused.status_code == 429
    assert "busy" in refused.json()["error"] and refused.headers["retry-after"]
    assert client.post("/api/jobs", json={"text": "Привет."}).status_code == 429
    health = client.get("/api/health").json()["jobs"]
    assert (health["running"], health["queued"]) == (1, 1)
    assert wait_done(single, first["job_id"])["status"] == "done"
    assert client.get(second["status_url"]).json()["status"] in ("running", "done")


def test_old_job_folders_are_removed_by_age(tmp_path):
    runs = tmp_path / "runs"
    old, young, foreign = runs / "old", runs / "young", runs / "not-a-job"
    for folder in (old, young, foreign):
        folder.mkdir(parents=True)
    for folder in (old, young):
        (folder / MARKER).write_text("{}")
    long_ago = time.time() - 7200
    os.utime(old / MARKER, (long_ago, long_ago))
    os.utime(foreign, (long_ago, long_ago))
    manager = JobManager(ServiceSettings(runs_dir=runs, job_ttl=3600))
    assert manager.remove_stale_folders() == [old]
    assert not old.exists() and young.exists() and foreign.exists()

    request = JobRequest("Привет.", 1, "espeak", "procedural", "", ROOT, "avatar.png")
    for name, finished in (("done", time.time() - 4000), ("recent", time.time()), ("live", None)):
        (runs / name).mkdir()
        manager.jobs[name] = Job(name, request, runs / name, finished=finished)
    assert manager.remove_expired() == ["done"]
    assert sorted(manager.jobs) == ["live", "recent"] and not (runs / "done").exists()


def test_use_only_gan_picks_wav2lip_only_when_its_checkpoint_exists(tmp_path):
    from vestnik import engines
    from vestnik.config import load_config
    from vestnik.service import catalog

    config = load_config(ROOT / "config" / "config.yaml")
    checkpoint = tmp_path / "wav2lip_gan.pth"
    config["defaults"]["lipsync"]["wav2lip"] = {"checkpoint": str(checkpoint)}
    engine, reason = catalog.gan_engine(config, ROOT)
    assert engine == "procedural" and str(checkpoint) in reason
    checkpoint.write_bytes(b"weights")
    if "wav2lip" in engines.names("lipsync"):
        info = catalog.engine_info(config, "lipsync", "wav2lip", ROOT)
        assert catalog.gan_engine(config, ROOT)[0] == "wav2lip"
        assert info.pinned() == {"wav2lip": {"checkpoint": str(checkpoint)}}


def test_run_config_has_one_job_with_absolute_paths(tmp_path):
    from vestnik.config import check_job, job_input, load_config
    from vestnik.service.jobs import JobRequest, run_config

    base = load_config(ROOT / "config" / "config.yaml")
    avatar = ROOT / "resources" / "avatar.png"
    pins = {"tts": {"neural": {"acoustic": "/models/a.pt", "vocoder": "/models/v.pt"}}}
    request = JobRequest("Привет.", 2, "neural", "procedural", "", avatar, "avatar.png", pins=pins)
    config = run_config(base, "job1", request, ROOT)
    assert list(config["jobs"]) == ["job1"]
    assert job_input(config, "job1") == ("text", "Привет.")
    settings = check_job(config, "job1")
    assert settings["chunks"]["workers"] == 2
    assert settings["tts"]["neural"]["acoustic"] == "/models/a.pt"
    assert settings["tts"]["neural"]["length_scale"] == base["defaults"]["tts"]["neural"][
        "length_scale"
    ]
    assert Path(config["defaults"]["avatar"]).is_absolute()
