# HiFi-GAN experiments: one training job per `vocoder.experiments` block, then copy-synthesis
# evaluation on the validation set. `snakemake train` builds the experiments in `vocoder.train`;
# any other experiment is built by asking for its generator.pt.
VOCODER = config["vocoder"]
VOCODER_TRAIN = list(VOCODER["train"])


rule train_vocoder:
    input:
        train="results/data/ruslan/train.tsv",
        val="results/data/ruslan/val.tsv",
    output:
        generator="results/models/vocoder/{name}/generator.pt",
        provenance="results/models/vocoder/{name}/provenance.json",
        curves=report(
            "results/models/vocoder/{name}/curves.png",
            caption="../report/vocoder_curves.rst",
            category="Vocoder",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "curves.png"},
        ),
    params:
        block=lambda wildcards: VOCODER["experiments"][wildcards.name],
        gpu=config.get("gpu"),
    wildcard_constraints:
        name=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    threads: VOCODER["threads"]
    resources:
        gpu=1,
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/vocoder/{name}/train.log",
    benchmark:
        "results/models/benchmarks/vocoder_{name}_train.tsv"
    script:
        "../scripts/train_vocoder.py"


rule vocoder_eval:
    input:
        generator="results/models/vocoder/{name}/generator.pt",
        val="results/data/ruslan/val.tsv",
    output:
        metrics="results/models/vocoder/{name}/eval/metrics.json",
        table=report(
            "results/models/vocoder/{name}/eval/metrics.tsv",
            caption="../report/vocoder_metrics.rst",
            category="Vocoder",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "metrics.tsv"},
        ),
        plot=report(
            "results/models/vocoder/{name}/eval/spectrograms.png",
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
        "../envs/vestnik.yaml"
    log:
        "logs/vocoder/{name}/eval.log",
    benchmark:
        "results/models/benchmarks/vocoder_{name}_eval.tsv"
    script:
        "../scripts/eval_vocoder.py"
