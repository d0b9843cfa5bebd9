# Speech for each job: TTS of its text, or its own recording, plus timings in speech.json.


rule tts:
    input:
        unpack(speech_inputs),
    output:
        wav=report(
            "results/jobs/{job}/speech.wav",
            caption="../report/speech.rst",
            category="Jobs",
            subcategory="{job}",
            labels={"job": "{job}", "file": "speech.wav"},
        ),
        json="results/jobs/{job}/speech.json",
    params:
        settings=settings,
        source=lambda wildcards: job_input(config, wildcards.job),
    resources:
        gpu=tts_gpu,
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/jobs/{job}/tts.log",
    benchmark:
        "results/jobs/{job}/benchmarks/tts.tsv"
    script:
        "../scripts/tts.py"
