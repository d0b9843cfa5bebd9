"""Run report: benchmarks found from rule patterns, tables, chart, gallery, snakemake --report."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from vestnik.errors import VestnikError
from vestnik.report import (
    RUN_ROW,
    find_benchmarks,
    jobs_table,
    read_benchmarks,
    run_lipsync,
    summarize_rules,
    write_experiment_page,
    write_media_gallery,
    write_run_report,
)

from .workflow_helpers import ROOT, base_config, run_workflow

JOB_CONSTRAINT = r"{job,[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}}"
PATTERNS = {
    "tts": f"results/jobs/{JOB_CONSTRAINT}/benchmarks/tts.tsv",
    "lipsync": f"results/jobs/{JOB_CONSTRAINT}/benchmarks/lipsync_{{i,\\d+}}.tsv",
    "any_stage": "results/jobs/{job}/benchmarks/{stage}.tsv",
    "train": "results/models/benchmarks/vocoder_{name}_train.tsv",
}
VOCODER_PAGE = "results/models/vocoder/micro/report/validation.html"
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench(path, *rows: tuple[float, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{s}\t0:00:01\t{rss}\t{rss * 3}\t-\t-\t0\t0\t50.0\t{s / 2}\n" for s, rss in rows]
    path.write_text(HEADER + "".join(lines), encoding="utf-8")


@pytest.fixture
def bench_tree(tmp_path):
    jobs = tmp_path / "results" / "jobs"
    bench(jobs / "a" / "benchmarks" / "tts.tsv", (2.0, 100.0))
    bench(jobs / "b" / "benchmarks" / "tts.tsv", (4.0, 300.0))
    bench(jobs / "a" / "benchmarks" / "lipsync_0.tsv", (1.0, 50.0))
    bench(jobs / "a" / "benchmarks" / "lipsync_1.tsv", (3.0, 70.0), (5.0, 90.0))
    bench(jobs / "a" / "benchmarks" / "lipsync_x.tsv", (9.0, 9.0))  # not a chunk index
    bench(jobs / "a" / "benchmarks" / "merge.tsv", (0.5, 20.0))
    bench(jobs / "gone" / "benchmarks" / "tts.tsv", (7.0, 7.0))  # job no longer in the config
    bench(tmp_path / "results" / "models" / "benchmarks" / "vocoder_base_train.tsv", (60, 900))
    return tmp_path


def test_benchmarks_are_matched_to_the_most_specific_rule(bench_tree):
    found = {b["path"]: (b["rule"], b["wildcards"]) for b in find_benchmarks(PATTERNS, bench_tree)}
    assert found["results/jobs/a/benchmarks/tts.tsv"] == ("tts", {"job": "a"})
    assert found["results/jobs/a/benchmarks/lipsync_1.tsv"] == ("lipsync", {"job": "a", "i": "1"})
    assert found["results/jobs/a/benchmarks/lipsync_x.tsv"][0] == "any_stage"
    assert found["results/jobs/a/benchmarks/merge.tsv"] == (
        "any_stage", {"job": "a", "stage": "merge"}
    )
    assert found["results/models/benchmarks/vocoder_base_train.tsv"] == (
        "train", {"name": "base"}
    )


def test_read_benchmarks_drops_old_jobs_and_averages_repeats(bench_tree):
    table = read_benchmarks(PATTERNS, bench_tree, jobs=["a", "b"])
    assert "gone" not in " ".join(table["path"])
    assert len(table) == 7
    row = table[table["path"].str.endswith("lipsync_1.tsv")].iloc[0]
    assert (row["s"], row["max_rss"], row["wildcards"]) == (4.0, 80.0, "i=1,job=a")
    summary = summarize_rules(table).set_index("rule")
    assert summary.loc["tts", "jobs"] == 2 and summary.loc["tts", "total_s"] == 6.0
    assert summary.loc["tts", "max_rss_mb"] == 300.0
    assert summary.loc["lipsync", "max_s"] == 4.0
    assert summary.index[0] == "train"  # sorted by total time


def test_a_broken_benchmark_file_names_itself(tmp_path):
    path = tmp_path / "results" / "jobs" / "a" / "benchmarks" / "tts.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("no header here\n", encoding="utf-8")
    with pytest.raises(VestnikError, match="tts.tsv"):
        read_benchmarks(PATTERNS, tmp_path)


def test_run_report_files(bench_tree):
    stats = bench_tree / "a_stats.json"
    stats.write_text(json.dumps({
        "job": "a", "speech_seconds": 3.5, "chunks": 2, "engine": "procedural",
        "seconds": {"tts": 2.0, "lipsync_parallel": 4.0, "total": 7.0}, "speedup": 1.5,
    }), encoding="utf-8")
    out = bench_tree / "out"
    table = write_run_report(
        PATTERNS, [stats], ["a", "b"], out / "b.tsv", out / "chart.png", out / "rules.html",
        out / "jobs.html", root=bench_tree,
    )
    assert len(pd.read_csv(out / "b.tsv", sep="\t")) == len(table) == 7
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rules = (out / "rules.html").read_text(encoding="utf-8")
    assert all(f"<td>{rule}</td>" in rules for rule in ("tts", "lipsync", "any_stage", "train"))
    jobs = (out / "jobs.html").read_text(encoding="utf-8")
    assert "<td>a</td>" in jobs and "lipsync_parallel_s" in jobs and "1.50" in jobs


def test_whole_run_row_counts_overlapping_chunks_once(bench_tree):
    paths = []
    for job, spans in (("a", [[0.0, 4.0], [0.0, 3.0]]), ("b", [[3.5, 6.0], [10.0, 11.0]])):
        path = bench_tree / f"{job}_stats.json"
        path.write_text(json.dumps({
            "job": job, "speech_seconds": 2.0, "chunks": len(spans), "engine": "procedural",
            "seconds": {"lipsync_parallel": 1.0}, "speedup": 1.0, "lipsync_spans": spans,
            "overhead": {"share": 0.2},
        }), encoding="utf-8")
        paths.append(path)
    table = jobs_table(paths)
    run = table[table["job"] == RUN_ROW].iloc[0]
    # chunk time 4 + 3 + 2.5 + 1 = 10.5 s over the union [0, 6] + [10, 11] = 7 s
    assert run["lipsync_sum_of_chunks_s"] == 10.5 and run["lipsync_parallel_s"] == 7.0
    assert run["speedup"] == 1.5 and run["chunks"] == 4
    assert list(table["overhead_share"][:2]) == [0.2, 0.2]
    assert run_lipsync([{"job": "old"}]) is None  # stats without spans: no whole-run row


def test_gallery_embeds_each_video(tmp_path):
    video, stats = tmp_path / "final.mp4", tmp_path / "stats.json"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a real movie")
    stats.write_text(json.dumps({"speech_seconds": 2.0, "chunks": 1, "engine": "procedural"}))
    write_media_gallery({"news": video}, {"news": stats}, tmp_path / "videos.html")
    page = (tmp_path / "videos.html").read_text(encoding="utf-8")
    assert page.count("<video") == 1 and "data:video/mp4;base64,AAAAGGZ0eXBtcDQy" in page
    assert "<h4>news</h4>" in page


def report_results(html: str) -> dict:
    """The `results` object the Snakemake report embeds: one entry per report file."""
    match = re.search(r'<script id="results">\s*var results = ', html)
    assert match, "no results in the report"
    return json.JSONDecoder().raw_decode(html[match.end():])[0]


def micro_training(config: dict, workdir) -> None:
    """A vocoder experiment of a few steps on a 12-sentence eSpeak corpus (about half a minute)."""
    sentences = (ROOT / config["ruslan"]["espeak_sentences"]).read_text(encoding="utf-8")
    corpus = workdir / "sentences.txt"
    corpus.write_text("\n".join(sentences.splitlines()[:12]) + "\n", encoding="utf-8")
    config["ruslan"].update({"espeak_sentences": str(corpus), "shards": 2, "val_size": 2})
    vocoder = config["vocoder"]
    vocoder.update({"train": ["micro"], "eval_items": 2, "threads": 1})
    vocoder["experiments"]["micro"] = {
        **vocoder["experiments"]["tiny"],
        "steps": 4, "batch_size": 1, "accumulation": 1, "log_interval": 1, "val_interval": 2,
        "sample_interval": 2, "checkpoint_interval": 2, "val_items": 2,
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Two rendered jobs and a tiny vocoder experiment, then `snakemake --report`."""
    workdir = tmp_path_factory.mktemp("report")
    jobs = {
        "news": {"text": "Добрый вечер. Сегодня в Москве тепло и солнечно.",
                 "chunks": {"workers": 2, "min_seconds": 1.0}},
        "hello": {"text": "Привет!"},
    }
    config = base_config(jobs)
    micro_training(config, workdir)
    for target in ("all", VOCODER_PAGE):
        run = run_workflow(workdir, config, target)
        assert run.returncode == 0, run.stderr[-3000:]
    built = run_workflow(workdir, config, "all", VOCODER_PAGE,
                         extra=("--report", "results/report.html"))
    assert built.returncode == 0, built.stderr[-3000:]
    html = (workdir / "results" / "report.html").read_text(encoding="utf-8")
    return workdir, report_results(html)


@pytest.mark.parametrize("job", ["news", "hello"])
@pytest.mark.slow
def test_report_has_each_jobs_video_speech_and_stats(report, job):
    _, results = report
    for name, mime in (("final.mp4", "video/mp4"), ("speech.wav", "audio/x-wav"),
                       ("stats.json", "application/json")):
        entry = results[f"results/jobs/{job}/{name}"]
        assert entry["mime_type"] == mime
        assert entry["labels"] == {"job": job, "file": name}
        assert f">{job}</tt>" in entry["caption"]
        assert entry["data_uri"].startswith(f"data:{mime}")


@pytest.mark.slow
def test_report_has_runtime_chart_tables_and_gallery(report):
    workdir, results = report
    for name, mime, words in (
        ("runtime_memory.png", "image/png", "Runtime and peak memory per rule"),
        ("rules.html", "text/html", "Per-rule summary"),
        ("jobs.html", "text/html", "Per-job stage seconds"),
        ("benchmarks.tsv", "text/tab-separated-values", "Every benchmark file"),
        ("videos.html", "text/html", "playable in the browser"),
    ):
        entry = results[f"results/report/{name}"]
        assert entry["mime_type"] == mime
        assert words in re.sub(r"\s+", " ", entry["caption"])
    table = pd.read_csv(workdir / "results" / "report" / "benchmarks.tsv", sep="\t")
    # news: tts, plan, merge + lipsync for 2 chunks; hello: the same with 1 chunk (a chunk job
    # cuts its own audio and the merge writes the stats, so neither has a job of its own)
    assert len(table) == 5 + 4
    assert set(table["rule"]) == {"tts", "plan_chunks", "lipsync", "merge"}
    # Snakemake samples memory while a job runs; a job quicker than its first sample records 0.
    assert (table["s"] > 0).all() and (table["max_rss"] >= 0).all()
    assert (table["max_rss"] > 0).any()
    gallery = (workdir / "results" / "report" / "videos.html").read_text(encoding="utf-8")
    assert gallery.count("data:video/mp4;base64,") == 2


@pytest.mark.slow
def test_report_has_the_vocoder_experiment(report):
    workdir, results = report
    folder = "results/models/vocoder/micro"
    expected = {
        f"{folder}/curves.png": ("image/png", "Training curves"),
        f"{folder}/eval/spectrograms.png": ("image/png", "Copy-synthesis"),
        f"{folder}/eval/metrics.tsv": ("text/tab-separated-values", "Resynthesis metrics"),
        f"{folder}/report/train_log.csv": ("text/csv", "Training log"),
        f"{folder}/report/validation.html": ("text/html", "validation mel L1"),
    }
    for path, (mime, words) in expected.items():
        entry = results[path]
        assert entry["mime_type"] == mime
        assert entry["labels"]["experiment"] == "micro"
        assert words in re.sub(r"\s+", " ", entry["caption"])
    page = (workdir / folder / "report" / "validation.html").read_text(encoding="utf-8")
    assert "Validation plots at step 4" in page
    assert page.count("data:image/png;base64,") == page.count("data:audio/wav;base64,") == 2
    assert "best " in page and "<td>pesq_wb</td>" not in page and "pesq_wb</th>" in page


def test_acoustic_experiment_page_embeds_its_last_plots(tmp_path):
    """An acoustic run keeps alignment/mel plots under plots/step_*; the page shows the last."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    folder = tmp_path / "acoustic" / "demo"
    for step in (100, 200):
        plots = folder / "plots" / f"step_{step:09d}"
        plots.mkdir(parents=True)
        fig, ax = plt.subplots()
        ax.imshow([[0, step], [step, 0]])
        fig.savefig(plots / "000001_alignment.png")
        plt.close(fig)
    (folder / "train_log.csv").write_text(
        "step,loss,val_loss,val_mel_l1\n10,2.0,,\n100,,0.9,0.81\n200,,0.8,0.74\n",
        encoding="utf-8",
    )
    page, log = tmp_path / "validation.html", tmp_path / "train_log.csv"
    write_experiment_page("demo", folder, page, log, "acoustic")
    html = page.read_text(encoding="utf-8")
    assert "Validation plots at step 200" in html
    assert "000001_alignment" in html and "data:image/png;base64," in html
    assert "best 0.7400 at step 200" in html
    assert log.read_bytes() == (folder / "train_log.csv").read_bytes()
