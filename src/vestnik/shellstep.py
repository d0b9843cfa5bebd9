"""Light workflow steps as `shell:` jobs: `python -m vestnik.shellstep CALL FILES LOG [NAME=JSON]`,
or, for the chunk plan and the merge, inside Snakemake's own process (`run_local`).

A `script:` job first imports Snakemake to unpickle its job object, about 0.1 s of CPU per
process; the speech, plan, chunk render and merge of a one-sentence job would pay it four
times. These steps read only what the workflow gives them as JSON (`step_call` and `step_files`
in workflow/rules/common.smk): `CALL`, the job's rule, wildcards and params, and `FILES`, its
named input and output files. The `NAME=JSON` arguments are values that must not rerun the job
when they change: the cores of a chunk render, and the whole checked settings of a job for its
speech step (the workflow checked them once, so the step needs neither the config nor the
schema; only the speech settings rerun it). The config's `gpu:` block comes in the environment
(VESTNIK_GPU). The step logs to stderr and to LOG, as a `script:` job does (vestnik.runner).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Call:
    """One shell step's job, as the workflow described it."""

    wildcards: dict[str, str]
    input: dict[str, str | list[str]]
    output: dict[str, str]
    params: dict
    extra: dict


def _gpu() -> dict | None:
    return json.loads(os.environ.get("VESTNIK_GPU", "null"))


def _speak(call: Call) -> None:
    from vestnik.errors import VestnikError
    from vestnik.steps import synthesize_job

    checked = call.extra["job"]
    if "error" in checked:  # the job's entry or settings do not fit the schema
        raise VestnikError(checked["error"])
    i, o = call.input, call.output
    pieces = None
    if "plan" in i:  # a re-voiced recording's pieces (vestnik.revoice)
        pieces = (i["plan"], list(i["piece_wavs"]), list(i["piece_records"]))
    kind, value = call.params["source"]
    synthesize_job(call.wildcards["job"], checked["settings"], kind, value, o["wav"], o["json"],
                   gpu=_gpu(), pieces=pieces)


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
        gpu=_gpu(),
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
    "tts": (_speak, True),
    "plan_chunks": (_plan, True),
    "lipsync": (_render, True),
    "merge": (_finish, False),
}
"""Each rule's adapter, and whether every settings block it reads is the rule's checked params
(`run_step(..., blocks_checked=True)` in a job process; in Snakemake's own process, where the
schema is loaded already, blocks are checked as anywhere else)."""


def run_local(rule: str, wildcards: Any, input: Any, output: Any, params: Any, log: Any) -> None:
    """Run `rule`'s step inside Snakemake's own process, from a local rule's `run:` block with
    that job's objects: the chunk plan and the merge, a few milliseconds of Python each, which
    a process start (about 0.2 s of CPU) would cost many times over
    (vestnik.runner.run_in_workflow)."""
    from vestnik.runner import StepJob, run_in_workflow

    call = Call(
        wildcards={key: str(value) for key, value in wildcards.items()},
        input=dict(input.items()),
        output=dict(output.items()),
        params=dict(params.items()),
        extra={},
    )
    job = StepJob(rule, call.wildcards, [str(path) for path in call.output.values()],
                  str(log[0]) if log else None)
    adapter = STEPS[rule][0]
    run_in_workflow(job, lambda: adapter(call))


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
