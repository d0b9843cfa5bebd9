# Acoustic model experiments (text -> mel for the `neural` TTS engine, see docs/acoustic.md): one
# training job per `acoustic.experiments` block, on the corpus split the vocoder uses.
# `snakemake train` builds the experiments in `acoustic.train`; a neural TTS job builds the one it
# names; any other is built by asking for results/models/acoustic/<name>/model.pt.
ACOUSTIC = config["acoustic"]
ACOUSTIC_TRAIN = list(ACOUSTIC["train"])


rule train_acoustic:
    input:
        train="results/data/ruslan/train.tsv",
        val="results/data/ruslan/val.tsv",
    output:
        model="results/models/acoustic/{name}/model.pt",
        provenance="results/models/acoustic/{name}/provenance.json",
        curves=report(
            "results/models/acoustic/{name}/curves.png",
            caption="../report/acoustic_curves.rst",
            category="Acoustic model",
            subcategory="{name}",
            labels={"experiment": "{name}", "file": "curves.png"},
        ),
    params:
        block=lambda wildcards: ACOUSTIC["experiments"][wildcards.name],
        gpu=config.get("gpu"),
    wildcard_constraints:
        name=r"[A-Za-z0-9][A-Za-z0-9_.\-]*",
    threads: ACOUSTIC["threads"]
    resources:
        gpu=1,
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/acoustic/{name}/train.log",
    benchmark:
        "results/models/benchmarks/acoustic_{name}_train.tsv"
    script:
        "../scripts/train_acoustic.py"
