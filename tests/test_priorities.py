"""Rule priorities: jobs finish in config order, each job's chunks rendering together."""

import pytest

from vestnik.priorities import STAGE_LEAD, faces_priority, stage_priority

ORDER = ["zeta", "alpha", "mid", "last"]  # config order, not alphabetical


def p(job: str, stage: str) -> int:
    return stage_priority(ORDER, job, stage)


@pytest.mark.parametrize("k", range(len(ORDER) - 2))
def test_stage_ordering_between_neighbouring_jobs(k):
    this, following, after = ORDER[k], ORDER[k + 1], ORDER[k + 2]
    # a finished job's merge before any later job's work
    assert p(this, "merge") > max(p(following, stage) for stage in STAGE_LEAD)
    # the next speech is made while this job renders; the next plan only fills a free core
    assert p(following, "speech") > p(this, "render") > p(following, "plan")
    # the next job's chunks wait behind the speech after it, so they do not start early
    assert p(after, "speech") > p(following, "render")
    # its gate, though, ranks above that speech, which would take one of the cores it frees
    assert p(following, "gate") > p(after, "speech")
    assert p(following, "gate") > p(following, "render")
    # and behind every stage of this job
    assert p(following, "render") < min(p(this, stage) for stage in STAGE_LEAD)


def test_config_order_wins_over_names():
    assert p("zeta", "render") > p("alpha", "render") > p("last", "render")
    with pytest.raises(KeyError):
        p("zeta", "train")


def test_faces_come_before_every_stage_of_every_job():
    assert faces_priority(ORDER) > max(p(job, stage) for job in ORDER for stage in STAGE_LEAD)
