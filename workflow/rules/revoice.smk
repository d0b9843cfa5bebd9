# Re-voicing a recording with its transcript (vestnik.revoice, docs/revoice.md): a plan cuts
# it in pauses into pieces and gives each its words; the pieces are aligned and spoken side by
# side; rule tts joins them into the job's speech.


checkpoint revoice_plan:
    input:
        unpack(revoice_inputs),
    output:
        plan=layout.REVOICE_PLAN,
        recording=layout.REVOICE_RECORDING,
    params:
        settings=step_params("revoice"),
    threads: 2  # torch's import and the encoding beside the recording's checks and mel
    priority: job_priority("speech")
    conda:
        TORCH_ENV
    log:
        fill(layout.JOB_LOG, step="revoice_plan"),
    benchmark:
        fill(layout.JOB_BENCHMARK, stage="revoice_plan")
    script:
        "../scripts/revoice_plan.py"


rule revoice_piece:
    input:
        unpack(engine_models("tts")),
        plan=layout.REVOICE_PLAN,
        recording=layout.REVOICE_RECORDING,
    output:
        wav=layout.REVOICE_PIECE_WAV,
        json=layout.REVOICE_PIECE_JSON,
    params:
        settings=step_params("revoice"),
    threads: 1
    priority: job_priority("speech")
    resources:
        gpu=device_slots("tts"),
    conda:
        TORCH_ENV
    log:
        fill(layout.JOB_LOG, step="revoice_{i}"),
    benchmark:
        fill(layout.JOB_BENCHMARK, stage="revoice_{i}")
    script:
        "../scripts/revoice_piece.py"
