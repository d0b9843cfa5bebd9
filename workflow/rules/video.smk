# Chunk plan, per-chunk audio and video (in parallel), merged video and stats.


checkpoint plan_chunks:
    input:
        speech="results/jobs/{job}/speech.wav",
        timings="results/jobs/{job}/speech.json",
    output:
        "results/jobs/{job}/chunks.tsv",
    params:
        settings=settings,
        fps=FPS,
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/jobs/{job}/plan_chunks.log",
    benchmark:
        "results/jobs/{job}/benchmarks/plan.tsv"
    script:
        "../scripts/plan_chunks.py"


rule chunk_audio:
    input:
        speech="results/jobs/{job}/speech.wav",
        plan="results/jobs/{job}/chunks.tsv",
    output:
        "results/jobs/{job}/chunks/{i}.wav",
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/jobs/{job}/chunk_audio_{i}.log",
    benchmark:
        "results/jobs/{job}/benchmarks/split_{i}.tsv"
    script:
        "../scripts/chunk_audio.py"


rule lipsync:
    input:
        unpack(lambda wildcards: {"avatar": avatar_input(wildcards)}),
        model=lipsync_model,
        audio="results/jobs/{job}/chunks/{i}.wav",
        plan="results/jobs/{job}/chunks.tsv",
        speech="results/jobs/{job}/speech.json",
    output:
        video="results/jobs/{job}/chunks/{i}.mp4",
        timing="results/jobs/{job}/chunks/{i}.json",
    params:
        settings=settings,
        fps=FPS,
        gpu=config.get("gpu", {}),
    threads: 1
    resources:
        gpu=lipsync_gpu,
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/jobs/{job}/lipsync_{i}.log",
    benchmark:
        "results/jobs/{job}/benchmarks/lipsync_{i}.tsv"
    script:
        "../scripts/lipsync.py"


rule merge:
    input:
        videos=chunk_videos,
        speech="results/jobs/{job}/speech.wav",
    output:
        video=report(
            "results/jobs/{job}/final.mp4",
            caption="../report/final_video.rst",
            category="Jobs",
            subcategory="{job}",
            labels={"job": "{job}", "file": "final.mp4"},
        ),
        provenance="results/jobs/{job}/provenance.json",
    params:
        record=lambda wildcards: job_provenance_inputs(config, wildcards.job),
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/jobs/{job}/merge.log",
    benchmark:
        "results/jobs/{job}/benchmarks/merge.tsv"
    script:
        "../scripts/merge.py"


rule stats:
    input:
        final="results/jobs/{job}/final.mp4",
        speech="results/jobs/{job}/speech.json",
        timings=chunk_timings,
        tts="results/jobs/{job}/benchmarks/tts.tsv",
        plan="results/jobs/{job}/benchmarks/plan.tsv",
        split=chunk_benchmarks("split"),
        merge="results/jobs/{job}/benchmarks/merge.tsv",
    output:
        report(
            "results/jobs/{job}/stats.json",
            caption="../report/job_stats.rst",
            category="Jobs",
            subcategory="{job}",
            labels={"job": "{job}", "file": "stats.json"},
        ),
    conda:
        "../envs/vestnik.yaml"
    log:
        "logs/jobs/{job}/stats.log",
    script:
        "../scripts/stats.py"
