# Chunk plan, per-chunk video (in parallel), merged video and stats. Priorities (job_priority)
# make jobs finish in config order with each job's chunks rendering side by side.


rule avatar_faces:
    input:
        lambda wildcards: existing(avatars_by_slug()[wildcards.avatar][0]),
    output:
        layout.AVATAR_FACES,
    wildcard_constraints:
        model="dlib68|haar",
    params:
        avatar=lambda wildcards: avatars_by_slug()[wildcards.avatar][0],
        jobs=lambda wildcards: avatars_by_slug()[wildcards.avatar][1],
    priority: faces_priority(JOB_ORDER)
    conda:
        LIGHT_ENV
    log:
        layout.AVATAR_FACES_LOG,
    script:
        "../scripts/avatar_faces.py"


# The plan and the merge are a few milliseconds of Python each (the merge's concatenation and
# mux run in ffmpeg): they run inside Snakemake's own process (local rules, in a thread with
# `force-use-threads`, see profiles/default), not in a process of their own each.
checkpoint plan_chunks:
    input:
        speech=layout.SPEECH_WAV,
        timings=layout.SPEECH_JSON,
    output:
        plan=layout.CHUNK_PLAN,
    params:
        settings=step_params("plan"),
        fps=FPS,
    priority: job_priority("plan")
    localrule: True
    log:
        fill(layout.JOB_LOG, step="plan_chunks"),
    benchmark:
        fill(layout.JOB_BENCHMARK, stage="plan")
    run:
        run_local("plan_chunks", wildcards, input, output, params, log)


# Holds one core per chunk (up to the run's cores) for an instant: Snakemake starts it only when
# that many cores are free at once, so the job's chunk renders, which it precedes, start together
# instead of one by one as other jobs' steps end (vestnik.priorities).
rule render_gate:
    input:
        layout.CHUNK_PLAN,
    output:
        temp(layout.RENDER_GATE),
    threads: gate_threads
    priority: job_priority("gate")
    localrule: True
    log:
        fill(layout.JOB_LOG, step="render_gate"),
    run:
        Path(output[0]).touch()


rule lipsync:
    input:
        unpack(engine_models("lipsync")),
        gate=render_gate,
        avatar=avatar_input,
        speech_wav=layout.SPEECH_WAV,
        plan=layout.CHUNK_PLAN,
        speech=layout.SPEECH_JSON,
        faces=avatar_faces_file,
    output:
        video=layout.CHUNK_VIDEO,
        timing=layout.CHUNK_TIMING,
    params:
        call=step_call("lipsync", settings=step_params("lipsync"), fps=FPS),
        files=step_files,
    threads: 1
    priority: job_priority("render")
    resources:
        gpu=device_slots("lipsync"),
    conda:
        engine_env("lipsync")
    log:
        fill(layout.JOB_LOG, step="lipsync_{i}"),
    benchmark:
        fill(layout.JOB_BENCHMARK, stage="lipsync_{i}")
    shell:
        step_shell("threads={threads}")

rule merge:
    input:
        videos=per_chunk(layout.CHUNK_VIDEO),
        speech=layout.SPEECH_WAV,
        speech_json=layout.SPEECH_JSON,
        timings=per_chunk(layout.CHUNK_TIMING),
        tts=speech_benchmarks,
        plan=fill(layout.JOB_BENCHMARK, stage="plan"),
        gate=render_gate,  # as the last step taking the marker, lets Snakemake remove it
    output:
        video=report(
            layout.FINAL_VIDEO,
            caption="../report/final_video.rst",
            category="Jobs",
            subcategory="{job}",
            labels={"job": "{job}", "file": "final.mp4"},
        ),
        provenance=layout.PROVENANCE,
        stats=report(
            layout.STATS,
            caption="../report/job_stats.rst",
            category="Jobs",
            subcategory="{job}",
            labels={"job": "{job}", "file": "stats.json"},
        ),
    params:
        record=provenance_record,
    priority: job_priority("merge")
    localrule: True
    log:
        fill(layout.JOB_LOG, step="merge"),
    benchmark:
        fill(layout.JOB_BENCHMARK, stage="merge")
    run:
        run_local("merge", wildcards, input, output, params, log)
