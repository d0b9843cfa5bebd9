# Speech for each job: TTS of its text, its own recording, or its re-voiced recording joined
# from its pieces (revoice.smk), plus timings in speech.json.


rule tts:
    input:
        unpack(speech_inputs),
    output:
        wav=report(
            layout.SPEECH_WAV,
            caption="../report/speech.rst",
            category="Jobs",
            subcategory="{job}",
            labels={"job": "{job}", "file": "speech.wav"},
        ),
        json=layout.SPEECH_JSON,
    params:
        call=step_call("tts", settings=step_params("tts"), source=job_source),
        files=step_files,
        job=checked_job,
    priority: job_priority("speech")
    resources:
        gpu=speech_slots,
    conda:
        engine_env("tts")
    log:
        fill(layout.JOB_LOG, step="tts"),
    benchmark:
        fill(layout.JOB_BENCHMARK, stage="tts")
    shell:
        step_shell("job={params.job:q}")
