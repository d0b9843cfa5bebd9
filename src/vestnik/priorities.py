"""Snakemake rule priorities that make jobs finish in config order, each job's chunks together.

Snakemake runs the ready job of highest priority whenever a core is free. Jobs are ranked by
their place in the config, 10 apart; each stage of a job adds its lead over the job's chunk
renders (0):

- merge +20: a finished job's merge comes before any later job's work, so the first video is
  out early;
- speech +15: the next job's speech (k+1: +5 against job k's renders) is made while job k
  renders, so it is ready when job k's chunks end;
- plan +6: the next job's plan (-4) only takes a core that job k's chunks leave free;
- gate +6: a job with several chunks passes a render gate first (workflow/rules/video.smk), a
  step holding one core per chunk that can only start once that many cores are free at once;
  when it ends they are free together and its chunks, the ready work of highest rank then, take
  them side by side. It ranks above the speech after it, which would otherwise take one of those
  cores. Until enough cores are free, the cores that do free up take lower-ranked steps.

Job k+1's chunks (-10) rank below the speech of job k+2 (-5), and behind its gate: without it a
core that frees up as other jobs' steps end, one at a time, would start job k+1's chunks one at a
time, spreading them over those steps' wall time.

An avatar's faces (one landmark fit for every job showing it) rank above everything and are a
target from the start: they run beside the first speech, so the first job's chunks do not wait
for them after its plan, and every later job's speech check reads them instead of fitting again.
"""

from __future__ import annotations

from collections.abc import Sequence

STAGE_LEAD = {"merge": 20, "speech": 15, "plan": 6, "gate": 6, "render": 0}
JOB_STEP = 10


def stage_priority(order: Sequence[str], job: str, stage: str) -> int:
    """Priority of `stage` of `job`, given the jobs in config order (higher runs first)."""
    return JOB_STEP * (len(order) - list(order).index(job)) + STAGE_LEAD[stage]


def faces_priority(order: Sequence[str]) -> int:
    """Priority of an avatar's faces: above every stage of every job."""
    return JOB_STEP * (len(order) + 1) + max(STAGE_LEAD.values())
