# Training corpus (RUSLAN layout): the eSpeak demo corpus, festvox-ru's real recordings or a
# corpus at `ruslan.root`, picked by `ruslan.source`; then scan, parallel shards, split.
import os

from vestnik.corpus import LABEL_DIR, METADATA_NAME, WAV_DIR, corpus_root

RUSLAN = config["ruslan"]
CORPUS_ROOT = corpus_root(RUSLAN)
CORPUS_METADATA = os.path.join(CORPUS_ROOT, METADATA_NAME)
CORPUS_WAVS = os.path.join(CORPUS_ROOT, WAV_DIR)
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


rule festvox_corpus:
    output:
        metadata=os.path.join(layout.FESTVOX_CORPUS, METADATA_NAME),
        wavs=directory(os.path.join(layout.FESTVOX_CORPUS, WAV_DIR)),
        labels=directory(os.path.join(layout.FESTVOX_CORPUS, LABEL_DIR)),
    params:
        festvox_root=RUSLAN.get("festvox_root"),
        download=layout.FESTVOX_DOWNLOAD,
    conda:
        LIGHT_ENV
    log:
        fill(layout.DATA_LOG, step="festvox_corpus"),
    benchmark:
        fill(layout.DATA_BENCHMARK, step="festvox_corpus")
    script:
        "../scripts/festvox_corpus.py"


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
        clean={
            key: RUSLAN[key]
            for key in ("trim_db", "trim_margin", "peak", "min_seconds", "max_clipped")
        },
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
