"""Light workflow steps as `shell:` jobs: `python -m vestnik.shellstep CALL FILES LOG [NAME=JSON]`.

A `script:` job first imports Snakemake to unpickle its job object, about 0.1 s of CPU per
process; the plan, chunk render and merge of a one-sentence job would pay it three times. These
steps read only what the workflow gives them as JSON (`step_call` and `step_files` in
workflow/rules/common.smk): `CALL`, the job's rule, wildcards and params, and `FILES`, its named
input and output files. The `NAME=JSON` arguments are values that must not rerun the job when
they change (its cores), so the rule passes them outside its params, as it does the config's
`gpu:` block (the environment's VESTNIK_GPU). The step logs to stderr and to LOG, as a
`script:` job does (vestnik.runner).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Call:
    """One shell step's job, as the workflow described it."""

    wildcards: dict[str, str]
    input: dict[str, str | list[str]]
    output: dict[str, str]
    params: dict
    extra: dict


def _plan(call: Call) -> None:
    from vestnik.steps import plan_job

    plan_job(call.input["speech"], call.params["settings"], call.params["fps"],
             call.output["plan"], call.input["timings"])


def _render(call: Call) -> None:
    from vestnik.steps import render_chunk

    faces = call.input.get("faces") or []
    render_chunk(
        call.wildcards["job"],
        call.params["settings"],
        call.params["fps"],
        call.input["plan"],
        int(call.wildcards["i"]),
        call.input["speech_wav"],
        call.input["speech"],
        call.output["video"],
        call.output["timing"],
        gpu=json.loads(os.environ.get("VESTNIK_GPU", "null")),
        threads=int(call.extra.get("threads", 1)),
        faces_json=faces[0] if faces else None,
    )


def _finish(call: Call) -> None:
    from vestnik.steps import finish_job

    i, o = call.input, call.output
    finish_job(
        call.wildcards["job"],
        list(i["videos"]),
        i["speech"],
        o["video"],
        o["provenance"],
        call.params["record"],
        {"tts": list(i["tts"]), "plan": [i["plan"]]},
        list(i["timings"]),
        i["speech_json"],
        o["stats"],
    )


STEPS: dict[str, tuple[Callable[[Call], None], bool]] = {
    "plan_chunks": (_plan, True),
    "lipsync": (_render, True),
    "merge": (_finish, False),
}
"""Each rule's adapter, and whether every settings block it reads is the rule's checked params
(`run_step(..., blocks_checked=True)`)."""


def main(argv: list[str] | None = None) -> None:
    """Run the job that `CALL` and `FILES` describe; exit 1 on failure (vestnik.runner)."""
    call_text, files_text, log_path, *pairs = sys.argv[1:] if argv is None else argv
    try:
        from vestnik.runner import StepJob, run_step

        document, files = json.loads(call_text), json.loads(files_text)
        call = Call(
            wildcards=document["wildcards"],
            input=files["input"],
            output=files["output"],
            params=document["params"],
            extra={name: json.loads(value) for name, value in (p.split("=", 1) for p in pairs)},
        )
        adapter, blocks_checked = STEPS[document["rule"]]
    except Exception:  # the workflow's own call is malformed: say so where its log says
        import traceback

        with open(log_path, "w", encoding="utf-8") as log:
            log.write(f"vestnik.shellstep could not read its call:\n{traceback.format_exc()}")
        raise
    job = StepJob(document["rule"], call.wildcards, list(call.output.values()), log_path)
    run_step(job, lambda: adapter(call), blocks_checked=blocks_checked)


if __name__ == "__main__":
    main()
