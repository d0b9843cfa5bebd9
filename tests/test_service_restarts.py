"""The service stopped or killed mid-job, then started again on the same runs folder, against a
real server (`vestnik serve` on a loopback port) running the real workflow: workflow runs
outlive their service and the next one takes every job over. Also the one JSON shape of every
error body, routing and parsing errors included."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from vestnik.service.jobs import MARKER

from .test_service import Server, wait_done

LONG_TEXT = (
    "Добрый вечер. Сегодня в Москве тепло и ясно, а завтра ожидается небольшой дождь. "
    "В выходные синоптики обещают солнце и лёгкий ветер с юга. "
    "Следующий выпуск новостей выйдет в эфир через час."
)


def record(runs: Path, job_id: str) -> dict:
    return json.loads((runs / job_id / MARKER).read_text(encoding="utf-8"))


def wait_for_run(runs: Path, job_id: str) -> int:
    """The pid of the job's Snakemake run, once it has started."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        marker = runs / job_id / MARKER
        pid = json.loads(marker.read_text(encoding="utf-8"))["record"]["pid"] if (
            marker.is_file()) else None
        if pid:
            return pid
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never started its workflow")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status != "Z"


def wait_gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    return False


def is_error_body(response: httpx.Response) -> bool:
    body = response.json()
    return (
        response.headers["content-type"].startswith("application/json")
        and isinstance(body.get("error"), str) and body["error"]
        and set(body) <= {"error", "job_id"}
    )


@pytest.fixture
def runs(tmp_path) -> Path:
    return tmp_path / "runs"


def test_sigterm_during_a_synchronous_request_answers_503_and_the_job_finishes(runs):
    server = Server(runs, "--concurrency", "1")
    answer: dict[str, httpx.Response] = {}

    def call() -> None:
        answer["response"] = server.client.post(
            "/api/generate_parallel", json={"text": LONG_TEXT, "num_workers": 2})

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 30
    while not list(runs.glob(f"*/{MARKER}")):
        assert time.monotonic() < deadline, "no job was created"
        time.sleep(0.1)
    job_id = next(runs.glob(f"*/{MARKER}")).parent.name
    pid = wait_for_run(runs, job_id)
    server.process.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    server.process.wait(timeout=60)
    response = answer["response"]
    assert response.status_code == 503, response.text
    assert is_error_body(response) and response.json()["job_id"] == job_id
    assert f"/api/jobs/{job_id}/video" in response.json()["error"]
    assert int(response.headers["retry-after"]) > 0
    assert alive(pid), "the workflow run should go on while the service restarts"

    again = Server(runs, "--concurrency", "1")
    try:
        status = wait_done(again, job_id)
        assert status["status"] == "done", status
        video = again.client.get(f"/api/jobs/{job_id}/video")
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert json.loads(video.headers["x-vestnik-stats"])["job"] == job_id
    finally:
        again.stop()


def test_after_a_sigkill_every_job_is_taken_over(runs):
    """A finished job, two running (one of whose runs dies with the service) and a queued one."""
    server = Server(runs, "--concurrency", "2", "--cores-per-run", "1")
    try:
        submit = lambda text: server.client.post(  # noqa: E731
            "/api/jobs", json={"text": text, "num_workers": 1}).json()["job_id"]
        finished_id = submit("Привет.")
        done = wait_done(server, finished_id)
        assert done["status"] == "done", done
        video = server.client.get(f"/api/jobs/{finished_id}/video").content
        watched_id, lost_id, queued_id = submit(LONG_TEXT), submit(LONG_TEXT), submit("Привет.")
        watched, lost = wait_for_run(runs, watched_id), wait_for_run(runs, lost_id)
        assert record(runs, queued_id)["status"] == "queued"
    finally:
        server.client.close()
        server.process.kill()
        server.process.wait()
    os.killpg(lost, signal.SIGKILL)  # as when a supervisor kills the service's whole group
    assert wait_gone(lost)
    assert alive(watched), "a run outlives a SIGKILL of its service"

    again = Server(runs, "--concurrency", "2", "--cores-per-run", "1")
    try:
        status = again.client.get(f"/api/jobs/{finished_id}").json()
        assert status["status"] == "done" and status["stats"] == done["stats"]
        assert again.client.get(f"/api/jobs/{finished_id}/video").content == video
        lost_status = wait_done(again, lost_id)
        assert lost_status["status"] == "failed" and lost_status["error_kind"] == "interrupted"
        assert "submit the job again" in lost_status["error"]
        for job_id in (watched_id, queued_id):
            assert wait_done(again, job_id)["status"] == "done", again.log.read_text()[-3000:]
            assert again.client.get(f"/api/jobs/{job_id}/video").status_code == 200
        health = again.client.get("/api/health").json()["jobs"]
        assert (health["running"], health["queued"], health["finished"]) == (0, 0, 4)
        (runs / finished_id / "results" / "jobs" / finished_id / "final.mp4").unlink()
        gone = again.client.get(f"/api/jobs/{finished_id}/video")
        assert gone.status_code == 404 and is_error_body(gone)
        assert "no longer on disk" in gone.json()["error"]
    finally:
        again.stop()


def test_every_error_body_has_one_json_shape(runs):
    server = Server(runs, "--max-body-bytes", "4096")
    json_type = {"Content-Type": "application/json"}
    try:
        cases = {
            "unknown path": server.client.get("/api/nothing"),
            "unknown job": server.client.get("/api/jobs/nonexistent"),
            "wrong method": server.client.delete("/api/health"),
            "wrong method on a job": server.client.put("/api/jobs/x"),
            "not JSON": server.client.post("/api/jobs", content=b'{"text": ', headers=json_type),
            "bytes that are not UTF-8": server.client.post(
                "/api/jobs", content=b'{"text": "\xff\xfe"}', headers=json_type),
            "form instead of JSON": server.client.post("/api/jobs", data={"text": "Привет."}),
            "plain text": server.client.post(
                "/api/jobs", content="Привет.".encode(), headers={"Content-Type": "text/plain"}),
            "empty body": server.client.post("/api/jobs", headers=json_type),
            "JSON that is not an object": server.client.post(
                "/api/jobs", content=b'["text"]', headers=json_type),
            "too large": server.client.post(
                "/api/jobs", content=b"x" * 5000, headers=json_type),
            "bad query": server.client.get("/api/health", params={"strict": "maybe"}),
        }
        for name, response in cases.items():
            assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
            assert is_error_body(response), (name, response.text)
        assert cases["unknown path"].status_code == 404
        assert "/api/nothing" in cases["unknown path"].json()["error"]
        assert cases["wrong method"].status_code == 405
        assert "GET" in cases["wrong method"].json()["error"]
    finally:
        server.stop()


def test_a_lone_surrogate_is_refused_with_422_before_any_job(runs):
    server = Server(runs)
    try:
        body = json.dumps({"text": "Привет \ud83d мир."})  # ASCII JSON with a \ud83d escape
        assert "\\ud83d" in body
        response = server.client.post(
            "/api/jobs", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        assert "not valid Unicode" in response.json()["error"]
        assert "U+D83D" in response.json()["error"]
        assert server.client.get("/api/health").json()["jobs"]["finished"] == 0
        assert not list(runs.glob(f"*/{MARKER}"))
    finally:
        server.stop()


def test_a_broken_config_is_a_json_503_and_health_not_ready(runs, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text((Path(__file__).parents[1] / "config/config.yaml").read_text("utf-8"),
                      encoding="utf-8")
    server = Server(runs, "--config", str(config))
    try:
        assert server.client.get("/api/health").json()["status"] == "ready"
        with open(config, "a", encoding="utf-8") as handle:
            handle.write("jobs: [unclosed\n")
        health = server.client.get("/api/health")
        assert health.status_code == 200
        report = health.json()
        assert report["status"] == "not ready"
        assert any("not valid YAML: line" in p and str(config) in p for p in report["problems"])
        strict = server.client.get("/api/health", params={"strict": "true"})
        assert strict.status_code == 503 and strict.json()["status"] == "not ready"
        for response in (
            server.client.post("/api/generate_parallel", json={"text": "Привет."}),
            server.client.post("/api/jobs", json={"text": "Привет."}),
        ):
            assert response.status_code == 503 and is_error_body(response), response.text
            assert "not valid YAML: line" in response.json()["error"]
    finally:
        server.stop()


def test_a_second_service_on_the_same_folder_leaves_the_first_ones_runs_alone(runs):
    first = Server(runs, "--concurrency", "1")
    second = None
    try:
        job_id = first.client.post(
            "/api/jobs", json={"text": LONG_TEXT, "num_workers": 2}).json()["job_id"]
        pid = wait_for_run(runs, job_id)
        second = Server(runs, "--concurrency", "1")
        assert second.client.get(f"/api/jobs/{job_id}").status_code == 404
        assert alive(pid)
        assert first.client.get(f"/api/jobs/{job_id}").json()["status"] == "running"
        assert wait_done(first, job_id)["status"] == "done"
        assert second.client.get(f"/api/jobs/{job_id}").status_code == 404
    finally:
        if second:
            second.stop()
        first.stop()
