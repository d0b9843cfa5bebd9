"""Service overhead: the HTTP service against running the same jobs with `snakemake` directly.

Usage (from the repo root):
    .venv/bin/python bench/service.py [--requests 2] [--clients 2] [--rounds 8] [--json out.json]

Each round sends `--requests` short texts from `--clients` concurrent clients (closed loop: a
client sends its next request when the previous answer arrives) to `vestnik serve
--concurrency CLIENTS --cores-per-run CORES/CLIENTS`, and runs the same jobs as `--clients`
concurrent `snakemake` processes with the same options and process handling the service uses
(one folder, a one-job config and a log file each, and a session of its own: with the kernel's
autogroup scheduling a new session gets its own CPU share against other work on the machine,
which made runs in a shared session about 1.5 times slower on a busy machine). Short rounds
alternate the two modes so a change in machine load hits both alike. Reported: requests per
minute, latency percentiles, service / direct ratios, and the service's own share of each
request (latency minus the Snakemake run it timed itself), which shared-machine load barely
moves; `os.getloadavg` before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vestnik.config import load_config  # noqa: E402
from vestnik.service.jobs import JobRequest, run_config  # noqa: E402
from vestnik.service.settings import default_snakemake  # noqa: E402

TEXTS = [
    "Привет.",
    "Добрый день.",
    "Сегодня тепло.",
    "Новости часа.",
    "До свидания.",
    "Спасибо за внимание.",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_clients(texts: list[str], clients: int, call) -> tuple[float, list[float], list[float]]:
    """Send every text from `clients` threads (round-robin split).

    `call(text)` returns (error or None, seconds of the request spent in the Snakemake run);
    the result is the wall time, the latencies and the latencies minus those run times.
    """
    latencies: list[float] = []
    overheads: list[float] = []
    errors: list[str] = []

    def client(share: list[str]) -> None:
        for text in share:
            started = time.perf_counter()
            problem, workflow = call(text)
            latency = time.perf_counter() - started
            latencies.append(latency)
            overheads.append(latency - workflow)
            if problem:
                errors.append(problem)

    threads = [threading.Thread(target=client, args=(texts[i::clients],)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        sys.exit("failed: " + errors[0])
    return time.perf_counter() - started, latencies, overheads


def service_round(url: str, texts: list[str], clients: int):
    http = httpx.Client(base_url=url, timeout=600)

    def call(text: str) -> tuple[str | None, float]:
        response = http.post("/api/generate_parallel", json={"text": text, "num_workers": 1})
        if response.status_code != 200 or response.headers["content-type"] != "video/mp4":
            job = response.json().get("job_id")
            detail = http.get(f"/api/jobs/{job}").json().get("log_tail") if job else ""
            return f"{response.status_code} {response.text[:300]}\n{detail}", 0.0
        stats = json.loads(response.headers["x-vestnik-stats"])
        return None, stats["service"]["workflow_seconds"]

    try:
        return run_clients(texts, clients, call)
    finally:
        http.close()


def direct_round(workdir: Path, texts: list[str], clients: int, cores: int):
    """The same jobs as the service runs them, started by hand: one folder and config each."""
    base = load_config(ROOT / "config" / "config.yaml")
    avatar = (ROOT / base["defaults"]["avatar"]).resolve()
    counter = iter(range(10**6))
    lock = threading.Lock()

    def call(text: str) -> tuple[str | None, float]:
        with lock:
            job = f"direct-{next(counter)}-{time.time_ns()}"
        folder = workdir / job
        request = JobRequest(text, 1, "espeak", "procedural", "", avatar, avatar.name)
        (folder / "config").mkdir(parents=True)
        (folder / "config" / "config.yaml").write_text(
            yaml.safe_dump(run_config(base, job, request, ROOT), allow_unicode=True),
            encoding="utf-8",
        )
        command = [
            default_snakemake(), "--snakefile", str(ROOT / "Snakefile"),
            "--directory", str(folder), "--cores", str(cores), "--resources", "gpu=1",
            "--latency-wait", "5", "--nocolor",
            f"results/jobs/{job}/final.mp4", f"results/jobs/{job}/stats.json",
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        started = time.perf_counter()
        with open(folder / "snakemake.log", "wb") as log:
            proc = subprocess.run(
                command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            return (folder / "snakemake.log").read_text(errors="replace")[-500:], seconds
        return None, seconds

    return run_clients(texts, clients, call)


def describe(
    name: str, walls: list[float], latencies: list[float], overheads: list[float], count: int
) -> dict:
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "mode": name,
        "requests": count * len(walls),
        "requests_per_minute": round(60 * count * len(walls) / sum(walls), 2),
        "latency_mean": round(statistics.fmean(latencies), 3),
        "latency_p50": round(pct(0.5), 3),
        "latency_p90": round(pct(0.9), 3),
        "latency_max": round(ordered[-1], 3),
        "outside_snakemake_mean": round(statistics.fmean(overheads), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2, help="requests per round and mode")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    cores = max(1, len(os.sched_getaffinity(0)) // args.clients)
    texts = [TEXTS[i % len(TEXTS)] for i in range(args.requests)]
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="vestnik-bench-") as scratch:
        scratch = Path(scratch)
        port = free_port()
        log = open(scratch / "serve.log", "wb")  # noqa: SIM115 (open for the server's lifetime)
        server = subprocess.Popen(
            [sys.executable, "-m", "vestnik.cli", "serve", "--port", str(port),
             "--runs-dir", str(scratch / "runs"), "--concurrency", str(args.clients),
             "--cores-per-run", str(cores), "--queue-size", str(args.requests)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            stdout=log, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(url + "/api/health", timeout=5)
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        sys.exit((scratch / "serve.log").read_text())
                    time.sleep(0.2)
            service_round(url, texts[:1], 1)
            direct_round(scratch / "direct", texts[:1], 1, cores)
            results: dict[str, tuple[list[float], list[float], list[float]]] = {
                "service": ([], [], []), "direct": ([], [], [])
            }
            for index in range(args.rounds):
                order = ("service", "direct") if index % 2 == 0 else ("direct", "service")
                for mode in order:
                    if mode == "service":
                        wall, lat, over = service_round(url, texts, args.clients)
                    else:
                        wall, lat, over = direct_round(
                            scratch / "direct", texts, args.clients, cores
                        )
                    results[mode][0].append(wall)
                    results[mode][1].extend(lat)
                    results[mode][2].extend(over)
                    print(f"round {index + 1} {mode}: {wall:.2f} s for {len(texts)} requests",
                          flush=True)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
            log.close()

    rows = [describe(mode, *results[mode], args.requests) for mode in ("service", "direct")]
    service, direct = rows
    summary = {
        "clients": args.clients,
        "cores_per_run": cores,
        "cpu_cores": len(os.sched_getaffinity(0)),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
        "throughput_ratio": round(
            service["requests_per_minute"] / direct["requests_per_minute"], 3
        ),
        "latency_ratio_mean": round(service["latency_mean"] / direct["latency_mean"], 3),
        "latency_ratio_p50": round(service["latency_p50"] / direct["latency_p50"], 3),
    }
    print("| mode | requests | req/min | mean s | p50 s | p90 s | max s | outside Snakemake s |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['requests']} | {row['requests_per_minute']} | "
              f"{row['latency_mean']} | {row['latency_p50']} | {row['latency_p90']} | "
              f"{row['latency_max']} | {row['outside_snakemake_mean']} |")
    print(f"throughput service/direct: {summary['throughput_ratio']}; "
          f"latency service/direct: mean {summary['latency_ratio_mean']}, "
          f"p50 {summary['latency_ratio_p50']}")
    print(f"load average before {summary['load_before']}, after {summary['load_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
