# Training corpus: eSpeak demo corpus (RUSLAN layout), scan, parallel preprocessing shards, split.
# `ruslan.root` picks the corpus; the default is the eSpeak corpus built by `espeak_corpus`.
import os

RUSLAN = config["ruslan"]
CORPUS_METADATA = os.path.join(RUSLAN["root"], layout.CORPUS_METADATA_NAME)
CORPUS_WAVS = os.path.join(RUSLAN["root"], layout.CORPUS_WAVS_NAME)
CORPUS_SHARDS = list(range(RUSLAN["shards"]))


rule espeak_corpus:
    input:
        RUSLAN["espeak_sentences"],
    output:
        metadata=f"{layout.ESPEAK_CORPUS}/{layout.CORPUS_METADATA_NAME}",
        wavs=directory(f"{layout.ESPEAK_CORPUS}/{layout.CORPUS_WAVS_NAME}"),
    conda:
        LIGHT_ENV
    log:
        fill(layout.DATA_LOG, step="espeak_corpus"),
    benchmark:
        fill(layout.DATA_BENCHMARK, step="espeak_corpus")
    script:
        "../scripts/espeak_corpus.py"


rule corpus_scan:
    input:
        metadata=CORPUS_METADATA,
        wavs=CORPUS_WAVS,
    output:
        layout.CORPUS_SCAN,
    params:
        shards=RUSLAN["shards"],
        source_rate=RUSLAN["source_rate"],
    conda:
        LIGHT_ENV
    log:
        fill(layout.DATA_LOG, step="corpus_scan"),
    benchmark:
        fill(layout.DATA_BENCHMARK, step="corpus_scan")
    script:
        "../scripts/corpus_scan.py"


rule corpus_shard:
    input:
        scan=layout.CORPUS_SCAN,
        wavs=CORPUS_WAVS,
    output:
        directory(layout.CORPUS_SHARD),
    params:
        clean={key: RUSLAN[key] for key in ("trim_db", "trim_margin", "peak", "min_seconds")},
    wildcard_constraints:
        shard=r"\d+",
    threads: 1
    conda:
        TORCH_ENV
    log:
        fill(layout.DATA_LOG, step="corpus_shard_{shard}"),
    benchmark:
        fill(layout.DATA_BENCHMARK, step="corpus_shard_{shard}")
    script:
        "../scripts/corpus_shard.py"


rule corpus_split:
    input:
        scan=layout.CORPUS_SCAN,
        shards=expand(layout.CORPUS_SHARD, shard=CORPUS_SHARDS),
    output:
        manifest=layout.CORPUS_MANIFEST,
        rejected=layout.CORPUS_REJECTED,
        train=layout.CORPUS_TRAIN,
        val=layout.CORPUS_VAL,
        summary=layout.CORPUS_SUMMARY,
    params:
        val_size=RUSLAN["val_size"],
        seed=RUSLAN["seed"],
    conda:
        LIGHT_ENV
    log:
        fill(layout.DATA_LOG, step="corpus_split"),
    script:
        "../scripts/corpus_split.py"
