"""Normalising and splitting long texts: time per character at 10,000 and at 100,000 characters.

Usage (from the repo root, on an otherwise idle machine):
    .venv/bin/python bench/normalize.py [--repeats 3]

The text is resources/texts/lecture.txt repeated. Splitting once took 18 s for 100,000
characters (every sentence stop searched the whole text before it); a linear splitter keeps the
ratio of the two sizes' times near 10, and both well under a second.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vestnik.text.normalize import normalize, split_sentences

ROOT = Path(__file__).resolve().parents[1]


def seconds(text: str, repeats: int) -> float:
    """Best of `repeats` wall-clock times of normalise + split."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        split_sentences(normalize(text), 300)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    base = (ROOT / "resources" / "texts" / "lecture.txt").read_text(encoding="utf-8")
    times = {}
    for size in (10_000, 100_000):
        text = (base * (size // len(base) + 1))[:size]
        times[size] = seconds(text, args.repeats)
        print(f"{size:>7,} characters: {times[size]:.3f} s")
    print(f"ratio 100k / 10k: {times[100_000] / times[10_000]:.1f} (linear: about 10)")


if __name__ == "__main__":
    main()
