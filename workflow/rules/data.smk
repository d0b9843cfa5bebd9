# Training corpus: eSpeak demo corpus (RUSLAN layout), scan, parallel preprocessing shards, split.
# `ruslan.root` picks the corpus; the default is the eSpeak corpus built by `espeak_corpus`.
import os

RUSLAN = config["ruslan"]
CORPUS_METADATA = os.path.join(RUSLAN["root"], "metadata_RUSLAN_22200.csv")
CORPUS_WAVS = os.path.join(RUSLAN["root"], "ruslan_dataset")
CORPUS_SHARDS = list(range(RUSLAN["shards"]))


rule espeak_corpus:
    input:
        RUSLAN["espeak_sentences"],
    output:
        metadata="results/data/espeak_corpus/metadata_RUSLAN_22200.csv",
        wavs=directory("results/data/espeak_corpus/ruslan_dataset"),
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/data/espeak_corpus.log",
    benchmark:
        "results/data/benchmarks/espeak_corpus.tsv"
    script:
        "../scripts/espeak_corpus.py"


rule corpus_scan:
    input:
        metadata=CORPUS_METADATA,
        wavs=CORPUS_WAVS,
    output:
        "results/data/ruslan/scan.tsv",
    params:
        shards=RUSLAN["shards"],
        source_rate=RUSLAN["source_rate"],
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/data/corpus_scan.log",
    benchmark:
        "results/data/benchmarks/corpus_scan.tsv"
    script:
        "../scripts/corpus_scan.py"


rule corpus_shard:
    input:
        scan="results/data/ruslan/scan.tsv",
        wavs=CORPUS_WAVS,
    output:
        directory("results/data/ruslan/shards/{shard}"),
    params:
        clean={key: RUSLAN[key] for key in ("trim_db", "trim_margin", "peak", "min_seconds")},
    wildcard_constraints:
        shard=r"\d+",
    threads: 1
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/data/corpus_shard_{shard}.log",
    benchmark:
        "results/data/benchmarks/corpus_shard_{shard}.tsv"
    script:
        "../scripts/corpus_shard.py"


rule corpus_split:
    input:
        scan="results/data/ruslan/scan.tsv",
        shards=expand("results/data/ruslan/shards/{shard}", shard=CORPUS_SHARDS),
    output:
        manifest="results/data/ruslan/manifest.tsv",
        rejected="results/data/ruslan/rejected.tsv",
        train="results/data/ruslan/train.tsv",
        val="results/data/ruslan/val.tsv",
        summary="results/data/ruslan/summary.json",
    params:
        val_size=RUSLAN["val_size"],
        seed=RUSLAN["seed"],
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/data/corpus_split.log",
    script:
        "../scripts/corpus_split.py"
