"""Talking-head quality of rendered jobs, measured on their final.mp4 by an independent fit.

Usage (repo root, after `make run` or any run that rendered the jobs):
    .venv/bin/python bench/lipsync_quality.py [--jobs caspian greeting lecture] [--table]

For each job, every frame of results/jobs/<job>/final.mp4 is decoded and gets a fresh dlib
detection and 68-point fit (vestnik.lipsync.quality); the figures are printed as JSON, or as a
Markdown table with --table. Targets: opening range >= 0.09 face widths, r >= 0.6, rounded /
spread width <= 0.93, 6-35 blinks a minute, head motion 0.2-4% of the face width.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import cv2  # noqa: E402

from vestnik import media  # noqa: E402
from vestnik.lipsync import quality  # noqa: E402

COLUMNS = [
    ("opening_range", "opening range (face widths)", "{:.3f}"),
    ("r_envelope", "r vs envelope", "{:.2f}"),
    ("round_spread", "rounded / spread width", "{:.2f}"),
    ("blinks_per_minute", "blinks / min", "{:.1f}"),
    ("head_motion", "head motion (% face width)", "{:.2f}"),
]


def frames_of(path: Path):
    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame
    finally:
        capture.release()


def measure_job(folder: Path) -> dict:
    video = folder / "final.mp4"
    fps = cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FPS)
    started = time.perf_counter()
    points = quality.fit_frames(frames_of(video))
    speech = json.loads((folder / "speech.json").read_text(encoding="utf-8"))
    rate = 22050
    samples = media.read_audio(str(folder / "speech.wav"), rate)
    envelope = quality.envelope(samples, rate, fps, len(points))
    result = quality.measure(points, fps, envelope, speech.get("events"))
    result["seconds"] = round(len(points) / fps, 1)
    result["fit_seconds"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", nargs="+", default=["caspian", "greeting", "lecture"])
    parser.add_argument("--results", default=str(ROOT / "results" / "jobs"))
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    rows = {job: measure_job(Path(args.results) / job) for job in args.jobs}
    if not args.table:
        print(json.dumps(rows, indent=2))
        return
    print("| job | speech (s) | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for job, row in rows.items():
        cells = [fmt.format(row[key]) if key in row else "n/a" for key, _, fmt in COLUMNS]
        print(f"| {job} | {row['seconds']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
