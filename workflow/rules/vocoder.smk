# HiFi-GAN experiments: one training job per `vocoder.experiments` block, then copy-synthesis
# evaluation on the validation set. `snakemake train` builds the experiments in `vocoder.train`;
# any other experiment is built by asking for its generator.pt.
from vestnik.slots import training_gpus

VOCODER = config["vocoder"]
VOCODER_TRAIN = list(VOCODER["train"])


rule train_vocoder:
    input:
        train=layout.CORPUS_TRAIN,
        val=layout.CORPUS_VAL,
    output:
        generator=layout.VOCODER_GENERATOR,
        provenance=layout.VOCODER_PROVENANCE,
        curves=report(
            layout.VOCODER_CURVES,
            caption="../report/vocoder_curves.rst",
            category="Vocoder",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "curves.png"},
        ),
    params:
        kind="vocoder",
        block=lambda wildcards: VOCODER["experiments"][wildcards.name],
    wildcard_constraints:
        name=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    threads: VOCODER["threads"]
    resources:
        gpu=lambda wildcards: training_gpus("vocoder_experiment", VOCODER["experiments"][wildcards.name]),
    conda:
        TORCH_ENV
    log:
        fill(layout.MODEL_LOG, kind="vocoder", step="train"),
    benchmark:
        fill(layout.MODEL_BENCHMARK, kind="vocoder", step="train")
    script:
        "../scripts/train_experiment.py"


rule vocoder_eval:
    input:
        generator=layout.VOCODER_GENERATOR,
        val=layout.CORPUS_VAL,
    output:
        metrics=layout.VOCODER_METRICS,
        table=report(
            layout.VOCODER_METRICS_TABLE,
            caption="../report/vocoder_metrics.rst",
            category="Vocoder",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "metrics.tsv"},
        ),
        plot=report(
            layout.VOCODER_SPECTROGRAMS,
            caption="../report/vocoder_spectrograms.rst",
            category="Vocoder",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "spectrograms.png"},
        ),
    params:
        limit=VOCODER["eval_items"],
    wildcard_constraints:
        name=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    threads: 1
    resources:
        gpu=1,
    conda:
        TORCH_ENV
    log:
        fill(layout.MODEL_LOG, kind="vocoder", step="eval"),
    benchmark:
        fill(layout.MODEL_BENCHMARK, kind="vocoder", step="eval")
    script:
        "../scripts/eval_vocoder.py"
