"""Every figure Vestnik draws: training curves, spectrograms, alignments, runtime charts.

Figures are drawn off-screen (Agg) and written atomically, so a plot caught half-written by a
kill never replaces a good one. Callers hand over plain arrays and tables; nothing here knows
about models or files other than the PNG it writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vestnik.io import atomic_write


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | os.PathLike, dpi: int = 80) -> None:
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    _pyplot().close(fig)


def curves(
    rows: Sequence[Mapping[str, str]],
    png_path: str | os.PathLike,
    panels: Sequence[tuple[str, Sequence[str]]],
    title: str = "",
) -> None:
    """One panel per (title, columns) pair, each column of `rows` plotted against `step`.

    Empty cells (a column not logged at that step) are left out of its line.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (panel_title, columns) in zip(axes[0], panels, strict=True):
        for column in columns:
            points = [(int(r["step"]), float(r[column])) for r in rows if r.get(column)]
            if points:
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, label=column, marker="." if len(points) < 30 else None)
        ax.set_title(panel_title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    _save(fig, png_path, dpi=90)


def mels(path: str | os.PathLike, panels: Sequence[tuple[str, np.ndarray]],
         title: str = "") -> None:
    """Stacked spectrogram images (one per (label, array) pair) on one colour scale."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.3 * len(panels)), squeeze=False)
    low = min(float(np.min(a)) for _, a in panels)
    high = max(float(np.max(a)) for _, a in panels)
    for ax, (label, array) in zip(axes[:, 0], panels, strict=True):
        ax.imshow(array, origin="lower", aspect="auto", interpolation="none", vmin=low, vmax=high)
        ax.set_ylabel(label)
    if title:
        axes[0, 0].set_title(title)
    fig.tight_layout()
    _save(fig, path)


def alignment(path: str | os.PathLike, logp: np.ndarray, durations: np.ndarray,
              title: str = "") -> None:
    """Per-frame token log-likelihoods (tokens x frames) with the searched path drawn over them."""
    plt = _pyplot()
    shown = logp - logp.max(axis=0, keepdims=True)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.imshow(np.maximum(shown, -200.0), origin="lower", aspect="auto", interpolation="none")
    ends = np.cumsum(durations)
    starts = ends - durations
    ax.step(np.concatenate([starts, ends[-1:]]) - 0.5,
            np.concatenate([np.arange(len(durations)), [len(durations) - 1]]),
            where="post", color="white", linewidth=1.0)
    ax.set_xlabel("mel frame")
    ax.set_ylabel("token")
    if title:
        ax.set_title(f"{title}: log-likelihood per frame, searched alignment")
    fig.tight_layout()
    _save(fig, path)


def spectrogram_pairs(
    path: str | os.PathLike,
    rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]],
    seconds_per_frame: float,
    top_khz: float,
    limits: tuple[float, float] = (-100.0, 20.0),
) -> None:
    """A grid of dB spectrograms: one row per (ident, [(label, image), ...]), time in seconds."""
    plt = _pyplot()
    columns = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(5.5 * columns, 2.6 * len(rows)),
                             squeeze=False)
    for row, (ident, images) in enumerate(rows):
        for col, (label, image) in enumerate(images):
            extent = (0, image.shape[1] * seconds_per_frame, 0, top_khz)
            axes[row, col].imshow(image, origin="lower", aspect="auto", vmin=limits[0],
                                  vmax=limits[1], extent=extent)
            axes[row, col].set_title(f"{ident}: {label}", fontsize=9)
            axes[row, col].set_ylabel("kHz")
    for ax in axes[-1]:
        ax.set_xlabel("s")
    fig.tight_layout()
    _save(fig, path)


def runtime_memory(rules: Sequence[str], seconds: Mapping[str, Sequence[float]],
                   rss_mb: Mapping[str, Sequence[float]], png_path: str | os.PathLike) -> None:
    """Two panels per rule: wall seconds and peak RSS of every job (dots) and their mean (bar)."""
    plt = _pyplot()
    height = 1.2 + 0.45 * max(len(rules), 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, height), sharey=True)
    panels = ((seconds, "wall time per job (s)"), (rss_mb, "peak RSS per job (MB)"))
    for ax, (values_of, label) in zip(axes, panels, strict=True):
        for y, rule in enumerate(rules):
            values = [v for v in values_of.get(rule, ()) if not np.isnan(v)]
            if not values:
                continue
            ax.barh(y, float(np.mean(values)), color="#9ecae1", height=0.6)
            ax.plot(values, [y] * len(values), "o", color="#08519c", markersize=4, alpha=0.7)
            ax.text(max(values), y, f"  n={len(values)}", va="center", fontsize=8)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(left=0)
    axes[0].set_yticks(range(len(rules)), rules)
    axes[0].invert_yaxis()
    if not rules:
        axes[0].text(0.5, 0.5, "no benchmark files yet", ha="center", transform=axes[0].transAxes)
    fig.suptitle("Runtime and memory per rule (bar: mean, dots: jobs)")
    fig.tight_layout()
    _save(fig, png_path, dpi=100)
