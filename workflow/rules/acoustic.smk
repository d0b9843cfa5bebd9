# Acoustic model experiments (text -> mel for the `neural` TTS engine, see docs/acoustic.md): one
# training job per `acoustic.experiments` block, on the corpus split the vocoder uses.
# `snakemake train` builds the experiments in `acoustic.train`; a neural TTS job builds the one it
# names; any other is built by asking for results/models/acoustic/<name>/model.pt. Its evaluation
# on the held-out recordings (MCD, length error, boundary error against phone labels where the
# corpus has them) goes to results/models/acoustic/<name>/eval/.
from vestnik.slots import training_gpus

ACOUSTIC = config["acoustic"]
ACOUSTIC_TRAIN = list(ACOUSTIC["train"])


rule train_acoustic:
    input:
        train=layout.CORPUS_TRAIN,
        val=layout.CORPUS_VAL,
    output:
        model=layout.ACOUSTIC_MODEL,
        provenance=layout.ACOUSTIC_PROVENANCE,
        curves=report(
            layout.ACOUSTIC_CURVES,
            caption="../report/acoustic_curves.rst",
            category="Acoustic model",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "curves.png"},
        ),
    params:
        kind="acoustic",
        block=lambda wildcards: ACOUSTIC["experiments"][wildcards.name],
    wildcard_constraints:
        name=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    threads: ACOUSTIC["threads"]
    resources:
        gpu=lambda wildcards: training_gpus("acoustic_experiment", ACOUSTIC["experiments"][wildcards.name]),
    conda:
        TORCH_ENV
    log:
        fill(layout.MODEL_LOG, kind="acoustic", step="train"),
    benchmark:
        fill(layout.MODEL_BENCHMARK, kind="acoustic", step="train")
    script:
        "../scripts/train_experiment.py"



rule acoustic_eval:
    input:
        model=layout.ACOUSTIC_MODEL,
        val=layout.CORPUS_VAL,
    output:
        metrics=layout.ACOUSTIC_METRICS,
        table=report(
            layout.ACOUSTIC_METRICS_TABLE,
            caption="../report/acoustic_metrics.rst",
            category="Acoustic model",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "metrics.tsv"},
        ),
    params:
        corpus_root=CORPUS_ROOT,
        clean={key: RUSLAN[key] for key in ("trim_db", "trim_margin")},
    wildcard_constraints:
        name=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    threads: 1
    conda:
        TORCH_ENV
    log:
        fill(layout.MODEL_LOG, kind="acoustic", step="eval"),
    benchmark:
        fill(layout.MODEL_BENCHMARK, kind="acoustic", step="eval")
    script:
        "../scripts/eval_acoustic.py"
