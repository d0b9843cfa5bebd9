"""Where a run's time and memory went: the rules' benchmark files as a table, a chart and HTML.

Snakemake writes one benchmark TSV per job (`benchmark:` in the rules). This module finds them
from the rules' own benchmark patterns, so a rule added later is picked up without changes here,
and renders what `snakemake --report` shows beside the videos: a per-rule runtime and memory
chart, a per-rule summary table and a per-job stage table from each job's stats.json.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from vestnik import plots
from vestnik.errors import VestnikError
from vestnik.io import atomic_write, write_text

BENCHMARK_COLUMNS = ("s", "max_rss", "max_vms", "cpu_time", "mean_load")
# `{name}` or `{name,regex}`; the regex may hold one level of `{m,n}` repetition braces.
_WILDCARD = re.compile(r"\{\s*(\w+)\s*(?:,\s*((?:[^{}]|\{\d*(?:,\d*)?\})*?))?\s*\}")


def _pattern_regex(pattern: str) -> re.Pattern:
    """A benchmark pattern as a regex with one named group per wildcard.

    Wildcards match within one path component unless the pattern gives its own regex
    (`{name,regex}`); a repeated wildcard must repeat its value.
    """
    parts, seen, last = [], set(), 0
    for match in _WILDCARD.finditer(pattern):
        parts.append(re.escape(pattern[last : match.start()]))
        name, regex = match.group(1), match.group(2)
        if name in seen:
            parts.append(f"(?P={name})")
        else:
            parts.append(f"(?P<{name}>{regex or '[^/]+'})")
            seen.add(name)
        last = match.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts) + r"\Z")


def _literal_length(pattern: str) -> int:
    return len(_WILDCARD.sub("", pattern))


def find_benchmarks(patterns: Mapping[str, str], root: str | os.PathLike = ".") -> list[dict]:
    """Every existing benchmark file under `root`, as {rule, path, wildcards}.

    `patterns` maps rule names to their `benchmark:` patterns. A file that fits several patterns
    belongs to the most specific one (the most literal characters).
    """
    root = Path(root)
    ranked = sorted(patterns.items(), key=lambda item: -_literal_length(item[1]))
    compiled = [(rule, _pattern_regex(pattern)) for rule, pattern in ranked]
    found: dict[str, dict] = {}
    for _rule, pattern in ranked:
        for path in sorted(root.glob(_WILDCARD.sub("*", pattern))):
            rel = path.relative_to(root).as_posix()
            if rel in found or not path.is_file():
                continue
            for rule, regex in compiled:
                match = regex.match(rel)
                if match:
                    found[rel] = {"rule": rule, "path": rel, "wildcards": match.groupdict()}
                    break
    return sorted(found.values(), key=lambda r: (r["rule"], r["path"]))


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return float("nan")


def read_benchmarks(
    patterns: Mapping[str, str],
    root: str | os.PathLike = ".",
    jobs: Iterable[str] | None = None,
) -> pd.DataFrame:
    """One row per benchmark file: rule, wildcards, seconds, peak RSS (MB) and friends.

    Files of jobs that are no longer in the config are left out when `jobs` is given. A file with
    several rows (a rule benchmarked with `repeat`) contributes its mean.
    """
    keep = set(jobs) if jobs is not None else None
    rows = []
    for entry in find_benchmarks(patterns, root):
        wildcards = entry["wildcards"]
        if keep is not None and "job" in wildcards and wildcards["job"] not in keep:
            continue
        path = Path(root) / entry["path"]
        try:
            table = pd.read_csv(path, sep="\t", dtype=str)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise VestnikError(f"not a benchmark table ({exc})", path=path) from exc
        if table.empty or "s" not in table.columns:
            raise VestnikError("benchmark table has no 's' column or no rows", path=path)
        row = {
            "rule": entry["rule"],
            "wildcards": ",".join(f"{k}={v}" for k, v in sorted(wildcards.items())),
            "path": entry["path"],
        }
        for column in BENCHMARK_COLUMNS:
            values = [_number(v) for v in table.get(column, pd.Series(dtype=str))]
            row[column] = sum(values) / len(values) if values else float("nan")
        rows.append(row)
    return pd.DataFrame(rows, columns=["rule", "wildcards", "path", *BENCHMARK_COLUMNS])


def summarize_rules(table: pd.DataFrame) -> pd.DataFrame:
    """Per rule: job count, total, mean and max seconds, and the largest peak RSS."""
    if table.empty:
        return pd.DataFrame(
            columns=["rule", "jobs", "total_s", "mean_s", "max_s", "max_rss_mb", "cpu_time_s"]
        )
    grouped = table.groupby("rule", sort=True)
    summary = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "total_s": grouped["s"].sum(),
            "mean_s": grouped["s"].mean(),
            "max_s": grouped["s"].max(),
            "max_rss_mb": grouped["max_rss"].max(),
            "cpu_time_s": grouped["cpu_time"].sum(),
        }
    ).reset_index()
    return summary.sort_values("total_s", ascending=False, ignore_index=True)


def plot_runtime_memory(table: pd.DataFrame, out_png: str | os.PathLike) -> None:
    """Two panels per rule: wall seconds and peak RSS of every job (dots) and their mean (bar)."""
    rules = list(summarize_rules(table)["rule"])
    by_rule = {rule: table.loc[table["rule"] == rule] for rule in rules}
    plots.runtime_memory(
        rules,
        {rule: list(rows["s"]) for rule, rows in by_rule.items()},
        {rule: list(rows["max_rss"]) for rule, rows in by_rule.items()},
        out_png,
    )


RUN_ROW = "(whole run)"
"""The jobs table's last row: the lip-sync stage of every job together."""


def jobs_table(stats_paths: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """One row per job from its stats.json: speech length, chunks, stage seconds, speed-up,
    start-up overhead; then a row for the whole run's lip-sync stage (see run_lipsync)."""
    rows = []
    every = []
    for path in stats_paths:
        try:
            stats = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise VestnikError(f"cannot read job stats ({exc})", path=path) from exc
        every.append(stats)
        row = {
            "job": stats["job"],
            "engine": stats.get("engine"),
            "speech_s": stats.get("speech_seconds"),
            "chunks": stats.get("chunks"),
        }
        row.update({f"{stage}_s": value for stage, value in stats.get("seconds", {}).items()})
        row["speedup"] = stats.get("speedup")
        row["overhead_share"] = (stats.get("overhead") or {}).get("share")
        rows.append(row)
    run = run_lipsync(every)
    if run is not None:
        rows.append({
            "job": RUN_ROW,
            "speech_s": sum(s.get("speech_seconds") or 0.0 for s in every),
            "chunks": sum(s.get("chunks") or 0 for s in every),
            "lipsync_parallel_s": run["wall_seconds"],
            "lipsync_sum_of_chunks_s": run["chunk_seconds"],
            "speedup": run["speedup"],
        })
    return pd.DataFrame(rows)


def run_lipsync(every_stats: Iterable[Mapping]) -> dict | None:
    """The run's lip-sync stage: summed chunk time over the time any chunk was rendering
    (the union of all jobs' chunk intervals), or None without chunk intervals."""
    spans = sorted(
        (float(a), float(b)) for stats in every_stats for a, b in stats.get("lipsync_spans", [])
    )
    if not spans:
        return None
    wall, (lo, hi) = 0.0, spans[0]
    for start, end in spans[1:]:
        if start > hi:
            wall += hi - lo
            lo, hi = start, end
        else:
            hi = max(hi, end)
    wall += hi - lo
    chunk_seconds = sum(end - start for start, end in spans)
    return {
        "wall_seconds": round(wall, 3),
        "chunk_seconds": round(chunk_seconds, 3),
        "speedup": round(chunk_seconds / wall, 3) if wall > 0 else None,
    }


def _html_page(title: str, note: str, table: pd.DataFrame) -> str:
    body = table.to_html(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-", border=0)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:1em}"
        "table{border-collapse:collapse}"
        "th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}"
        "th:first-child,td:first-child{text-align:left}"
        "th{background:#f0f0f0}"
        f"</style></head><body><h3>{html.escape(title)}</h3>"
        f"<p>{html.escape(note)}</p>\n{body}\n</body></html>\n"
    )


MAX_EMBED_BYTES = 20_000_000
"""Videos larger than this stay out of the gallery (the report still offers the file)."""


def write_media_gallery(
    videos: Mapping[str, str | os.PathLike],
    stats_paths: Mapping[str, str | os.PathLike],
    out_html: str | os.PathLike,
) -> None:
    """One page with a player per job, so the report plays the videos instead of downloading them.

    The videos are embedded as data URIs: the report shows HTML pages in a sandboxed frame that
    cannot reach other files.
    """
    sections = []
    for job, video in sorted(videos.items()):
        data = Path(video).read_bytes()
        stats = json.loads(Path(stats_paths[job]).read_text(encoding="utf-8"))
        caption = (
            f"{stats.get('speech_seconds', 0):.1f} s of speech, chunks: {stats.get('chunks')}, "
            f"engine {stats.get('engine')}, {len(data) / 1e6:.1f} MB"
        )
        if len(data) > MAX_EMBED_BYTES:
            player = "<p>Too large to embed here; open final.mp4 under Jobs.</p>"
        else:
            uri = "data:video/mp4;base64," + base64.b64encode(data).decode("ascii")
            player = f"<video controls preload='auto' width='384' src='{uri}'></video>"
        sections.append(
            f"<div class='job'><h4>{html.escape(job)}</h4>{player}"
            f"<p>{html.escape(caption)}</p></div>"
        )
    write_text(
        out_html,
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>Videos</title><style>"
        "body{font-family:sans-serif;margin:1em}"
        ".job{display:inline-block;vertical-align:top;margin:0 1.5em 1.5em 0}"
        "h4{margin:0 0 .3em}p{margin:.3em 0;color:#555;font-size:90%}"
        "</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n",
    )


def write_run_report(
    patterns: Mapping[str, str],
    stats_paths: Iterable[str | os.PathLike],
    jobs: Iterable[str],
    out_tsv: str | os.PathLike,
    out_png: str | os.PathLike,
    out_rules_html: str | os.PathLike,
    out_jobs_html: str | os.PathLike,
    root: str | os.PathLike = ".",
) -> pd.DataFrame:
    """All benchmark rows (TSV), the runtime/memory chart, and per-rule and per-job HTML tables."""
    table = read_benchmarks(patterns, root, jobs)
    with atomic_write(out_tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    plot_runtime_memory(table, out_png)
    write_text(
        out_rules_html,
        _html_page(
            "Benchmarks per rule",
            f"{len(table)} benchmark files; seconds are wall time, RSS in MB.",
            summarize_rules(table),
        ),
    )
    write_text(
        out_jobs_html,
        _html_page(
            "Stage seconds per job",
            "From each job's stats.json; lipsync_parallel is the chunks' wall time, "
            "speedup = sum of chunk times / that wall time; overhead_share is the part of the "
            f"chunk jobs' time spent starting and preparing. The {RUN_ROW} row counts every "
            "chunk of the run over the time during which any chunk was rendering.",
            jobs_table(stats_paths),
        ),
    )
    return table


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _read_table(path: Path, sep: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=sep, dtype={"id": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise VestnikError(f"cannot read table ({exc})", path=path) from exc


def write_experiment_page(
    name: str,
    folder: str | os.PathLike,
    out_html: str | os.PathLike,
    out_log: str | os.PathLike,
    kind: str,
) -> None:
    """A training experiment in one page, and a copy of its train_log.csv for the report.

    The page holds the metrics of the evaluation on held-out recordings (where there is one),
    the model's best-checkpoint metric at every validation with the best step, and the plots
    (and audio) of the last validation step found in the model's samples folder, all embedded
    (the report shows HTML pages in a frame that cannot reach other files). `kind` is "vocoder" or
    "acoustic": its config module declares the metric and the samples folder.
    """
    from vestnik.acoustic import config as acoustic
    from vestnik.vocoder import config as vocoder

    declared = {"vocoder": vocoder, "acoustic": acoustic}[kind]
    metric, samples = declared.BEST_METRIC, declared.SAMPLES
    folder = Path(folder)
    log = _read_table(folder / "train_log.csv", ",")
    with atomic_write(out_log) as tmp:
        tmp.write_bytes((folder / "train_log.csv").read_bytes())
    parts = [f"<h3>Experiment {html.escape(name)}</h3>"]

    metrics_path = folder / "eval" / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        summary = pd.DataFrame([{k: v for k, v in metrics.items()
                                 if k not in ("generator", "model")}])
        parts.append("<h4>Evaluation on the held-out recordings (mean over utterances; "
                     "boundary error: median)</h4>")
        parts.append(summary.to_html(index=False, na_rep="-", border=0))
        table = folder / "eval" / "metrics.tsv"
        if table.is_file():
            parts.append("<h4>Per utterance</h4>")
            parts.append(_read_table(table, "\t").to_html(index=False, na_rep="-", border=0))

    if metric in log.columns:
        val = log.dropna(subset=[metric])[["step", metric]]
        best = val.loc[val[metric].idxmin()] if not val.empty else None
        parts.append(f"<h4>Validation {html.escape(metric)} by step (lower is better)</h4>")
        if best is not None:
            parts.append(
                f"<p>best {best[metric]:.4f} at step {int(best['step'])}; "
                f"{int(log['step'].max())} steps logged</p>"
            )
        parts.append(val.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0))

    steps = sorted((folder / samples).glob("step_*")) if (folder / samples).is_dir() else []
    if steps:
        last = steps[-1]
        parts.append(
            f"<h4>Validation plots at step {int(last.name.split('_')[-1])}</h4>"
            "<p>Ground truth against what the model made, with generated audio where kept.</p>"
        )
        for plot in sorted(last.glob("*.png")):
            audio = plot.with_suffix(".wav")
            player = (
                f"<audio controls src='{_data_uri(audio, 'audio/wav')}'></audio>"
                if audio.is_file()
                else ""
            )
            parts.append(
                f"<div class='sample'><p>{html.escape(plot.stem)}</p>"
                f"<img src='{_data_uri(plot, 'image/png')}'><br>{player}</div>"
            )
    write_text(
        out_html,
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(name)}</title><style>"
        "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:1em}"
        "th,td{padding:3px 9px;border-bottom:1px solid #ddd;text-align:right}th{background:#f0f0f0}"
        ".sample{display:inline-block;vertical-align:top;margin:0 1em 1em 0}"
        ".sample img{max-width:560px}"
        "</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n",
    )
