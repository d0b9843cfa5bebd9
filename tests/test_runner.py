"""Failed steps leave their reason in the job's log and in an error record; readers use it."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from vestnik.errors import VestnikError
from vestnik.runner import read_error_record, run_step
from vestnik.service.jobs import Job, JobRequest, failure
from vestnik.status import Row, classify

SCHEMA_ERROR = (
    "settings does not fit the schema:\n  at chunks/context: NaN and infinity are not allowed\n"
    "  at lipsync/procedural: unknown procedural setting(s) ['max_opn']; known: [...]"
)


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:], root.level = handlers, level


def fake_job(tmp_path, rule="lipsync", **wildcards):
    folder = tmp_path / "results" / "jobs" / "j" / "chunks"
    log = tmp_path / "logs" / f"{rule}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(
        rule=rule,
        wildcards={"job": "j", **wildcards},
        output=[str(folder / "0.mp4"), str(folder / "0.json")],
        log=[str(log)],
    )


def boom():
    raise KeyError("frames")


def test_an_unexpected_exception_reaches_the_log_and_the_record(tmp_path):
    smk = fake_job(tmp_path, i="0")
    with pytest.raises(SystemExit) as exit_info:
        run_step(smk, boom)
    assert exit_info.value.code == 1
    log = (tmp_path / "logs" / "lipsync.log").read_text(encoding="utf-8")
    assert "Traceback" in log and "KeyError: 'frames'" in log and "rule lipsync" in log
    record = read_error_record(tmp_path / "results" / "jobs" / "j" / "chunks" / "0.error.json")
    assert record["kind"] == "internal" and record["rule"] == "lipsync"
    assert record["wildcards"] == {"job": "j", "i": "0"}
    assert "KeyError" in record["message"] and "in boom" in record["traceback"]
    assert record["log"] == smk.log[0]


def test_a_refused_input_keeps_its_whole_message_and_a_later_success_clears_it(tmp_path):
    smk = fake_job(tmp_path, "tts")

    def refuse():
        raise VestnikError(SCHEMA_ERROR, job="j")

    with pytest.raises(SystemExit):
        run_step(smk, refuse)
    path = tmp_path / "results" / "jobs" / "j" / "chunks" / "0.error.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["kind"] == "input" and record["message"] == f"job 'j': {SCHEMA_ERROR}"
    assert record["traceback"] is None
    run_step(fake_job(tmp_path, "other"), lambda: None)
    assert path.is_file()  # another step's success leaves the record alone
    run_step(smk, lambda: None)
    assert not path.exists()


def test_the_service_reports_a_recorded_multi_line_input_error_as_input(tmp_path):
    run_dir = tmp_path / "run"
    smk = fake_job(run_dir, "tts")
    smk.wildcards = {"job": "j"}

    def refuse():
        raise VestnikError(SCHEMA_ERROR, job="j")

    with pytest.raises(SystemExit):
        run_step(smk, refuse)
    request = JobRequest("Привет.", 1, "espeak", "procedural", "", tmp_path, "a.png")
    kind, message = failure(Job("j", request, run_dir, {}))
    assert kind == "input"
    assert message == f"{SCHEMA_ERROR} (workflow step tts)"


def test_the_service_calls_an_unrecorded_failure_internal(tmp_path):
    request = JobRequest("Привет.", 1, "espeak", "procedural", "", tmp_path, "a.png")
    (tmp_path / "logs" / "jobs" / "j").mkdir(parents=True)
    (tmp_path / "logs" / "jobs" / "j" / "tts.log").write_text(
        "2026-11-25 15:00:00,000 ERROR vestnik: job 'j': looks like input (rule tts)\n"
    )
    assert failure(Job("j", request, tmp_path, {}))[0] == "internal"


def test_status_reads_the_record_of_a_failed_job(tmp_path):
    smk = fake_job(tmp_path, "lipsync", i="0")
    with pytest.raises(SystemExit):
        run_step(smk, boom)
    unit = classify("job", "j", [Row("f", "merge", "missing", True)], None, tmp_path,
                    tmp_path / "results" / "jobs" / "j")
    assert unit.state == "failed"
    assert unit.detail == f"{smk.log[0]}: KeyError: 'frames'"


def test_status_names_the_weights_a_job_lacks(tmp_path):
    from vestnik.config import validate_config
    from vestnik.status import missing_weights

    config = validate_config({
        "jobs": {
            "gan": {"text": "Привет.", "lipsync": {"engine": "wav2lip", "wav2lip": {
                "checkpoint": "models/w.pth"}}},
            "trained": {"text": "Привет.", "tts": {"engine": "neural"}},
            "plain": {"text": "Привет."},
        },
        "acoustic": {"experiments": {"tiny": {}}},
    })
    assert missing_weights(config, "gan", tmp_path) == ["models/w.pth"]
    assert missing_weights(config, "plain", tmp_path) == []
    # the acoustic model is trained by the workflow; the vocoder experiment is not defined
    vocoder = "results/models/vocoder/tiny/generator.pt"
    assert missing_weights(config, "trained", tmp_path) == [vocoder]
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "w.pth").write_bytes(b"weights")
    assert missing_weights(config, "gan", tmp_path) == []


def test_a_record_that_cannot_be_written_does_not_hide_the_error(tmp_path, monkeypatch):
    import vestnik.runner

    def full(path, obj):
        raise VestnikError("could not write the file: the disk is full", path=path)

    monkeypatch.setattr(vestnik.runner, "write_json", full)
    smk = fake_job(tmp_path, "merge")
    with pytest.raises(SystemExit) as exit_info:
        run_step(smk, boom)
    assert exit_info.value.code == 1
    log = (tmp_path / "logs" / "merge.log").read_text(encoding="utf-8")
    assert "KeyError: 'frames'" in log and "no error record written" in log


def test_only_steps_that_say_so_take_their_blocks_unchecked(tmp_path):
    """A step that builds a block of its own (the eSpeak corpus) gets its defaults filled in."""
    from vestnik.config import engine_settings

    seen = []
    step = lambda: seen.append(engine_settings("tts", "espeak", {"voice": "ru"}))  # noqa: E731
    run_step(fake_job(tmp_path, i="0"), step)
    run_step(fake_job(tmp_path, i="0"), step, blocks_checked=True)
    assert seen[0]["max_chars"] == 300 and seen[0]["volume"] == 100
    assert seen[1] == {"voice": "ru"}
    assert engine_settings("tts", "espeak", {})["rate"] == 165  # checked again afterwards


def shell_step(tmp_path, speech: str, timings: str) -> tuple[list[str], Path]:
    """Arguments of `python -m vestnik.shellstep` for one job's chunk plan, and the plan."""
    plan = tmp_path / "results" / "jobs" / "j" / "chunks.tsv"
    call = {"rule": "plan_chunks", "wildcards": {"job": "j"},
            "params": {"fps": 25, "settings": {"chunks": {
                "context": 0.5, "max_seconds": None, "min_seconds": 2.0,
                "search_window": 0.6, "workers": 3}}}}
    files = {"input": {"speech": speech, "timings": timings}, "output": {"plan": str(plan)}}
    log = tmp_path / "logs" / "plan_chunks.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return [json.dumps(call), json.dumps(files), str(log)], plan


def test_a_shell_step_runs_its_job_from_the_workflows_json(tmp_path):
    import numpy as np

    from vestnik.shellstep import main
    from vestnik.tts.speech import Speech

    wav, timings = tmp_path / "speech.wav", tmp_path / "speech.json"
    tone = 0.3 * np.sin(np.arange(22050 * 3) * 2 * np.pi * 220 / 22050)
    Speech(tone, 22050, [], "", "test").save(str(wav), str(timings))
    argv, plan = shell_step(tmp_path, str(wav), str(timings))
    main(argv)
    assert plan.read_text(encoding="utf-8").startswith("chunk")
    assert "planned 1 chunks" in Path(argv[2]).read_text(encoding="utf-8")


def test_a_shell_steps_refused_input_leaves_its_record_and_exit_code(tmp_path, capsys):
    from vestnik.shellstep import main

    argv, plan = shell_step(tmp_path, str(tmp_path / "none.wav"), str(tmp_path / "none.json"))
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    record = read_error_record(plan.with_name("chunks.error.json"))
    assert record["rule"] == "plan_chunks" and record["wildcards"] == {"job": "j"}
    assert record["kind"] == "input" and "cannot read the speech timings" in record["message"]
    assert record["log"] == argv[2]
    assert "cannot read the speech timings" in capsys.readouterr().err
    assert "cannot read the speech timings" in Path(argv[2]).read_text(encoding="utf-8")


def test_a_malformed_shell_step_call_leaves_its_traceback_in_the_log(tmp_path):
    from vestnik.shellstep import main

    argv, _ = shell_step(tmp_path, "speech.wav", "speech.json")
    with pytest.raises(KeyError):
        main(['{"rule": "no_such_rule", "wildcards": {}, "params": {}}', *argv[1:]])
    log = Path(argv[2]).read_text(encoding="utf-8")
    assert "could not read its call" in log and "KeyError: 'no_such_rule'" in log


def test_a_step_in_the_workflows_process_logs_only_its_own_thread(tmp_path, monkeypatch):
    """The chunk plan runs in a thread of Snakemake's process (`run_local`): its log file gets
    its own records, not another thread's, and Snakemake's logging is left as it was."""
    import threading

    import numpy as np

    from vestnik import steps
    from vestnik.shellstep import run_local
    from vestnik.tts.speech import Speech

    wav, timings = tmp_path / "speech.wav", tmp_path / "speech.json"
    tone = 0.3 * np.sin(np.arange(22050 * 3) * 2 * np.pi * 220 / 22050)
    Speech(tone, 22050, [], "", "test").save(str(wav), str(timings))
    argv, plan = shell_step(tmp_path, str(wav), str(timings))
    call, files = json.loads(argv[0]), json.loads(argv[1])
    plan_job = steps.plan_job

    def plan_beside_another_thread(*args, **kwargs):
        other = threading.Thread(target=logging.getLogger("vestnik").warning, args=("not mine",))
        other.start()
        other.join()
        return plan_job(*args, **kwargs)

    monkeypatch.setattr(steps, "plan_job", plan_beside_another_thread)
    root_handlers = logging.getLogger().handlers[:]
    run_local("plan_chunks", {"job": "j"}, files["input"], files["output"], call["params"],
              [argv[2]])
    log = Path(argv[2]).read_text(encoding="utf-8")
    assert plan.read_text(encoding="utf-8").startswith("chunk")
    assert "planned 1 chunks" in log and "not mine" not in log
    assert logging.getLogger().handlers == root_handlers


def test_a_failed_step_in_the_workflows_process_raises_and_leaves_its_record(tmp_path):
    from vestnik.runner import StepFailed
    from vestnik.shellstep import run_local

    argv, plan = shell_step(tmp_path, str(tmp_path / "none.wav"), str(tmp_path / "none.json"))
    call, files = json.loads(argv[0]), json.loads(argv[1])
    with pytest.raises(StepFailed, match="cannot read the speech timings"):
        run_local("plan_chunks", {"job": "j"}, files["input"], files["output"], call["params"],
                  [argv[2]])
    record = read_error_record(plan.with_name("chunks.error.json"))
    assert record["kind"] == "input" and record["rule"] == "plan_chunks"
    assert "cannot read the speech timings" in Path(argv[2]).read_text(encoding="utf-8")


def test_the_speech_step_fails_with_the_workflows_verdict_on_a_bad_job(tmp_path):
    """The workflow checked the job once; its speech step reports why it does not fit."""
    from vestnik.shellstep import main

    out = tmp_path / "results" / "jobs" / "j"
    call = {"rule": "tts", "wildcards": {"job": "j"},
            "params": {"settings": {"invalid": True}, "source": None}}
    files = {"input": {}, "output": {"wav": str(out / "speech.wav"),
                                     "json": str(out / "speech.json")}}
    log = tmp_path / "logs" / "tts.log"
    log.parent.mkdir(parents=True)
    verdict = json.dumps({"error": f"job 'j': {SCHEMA_ERROR}"})
    with pytest.raises(SystemExit):
        main([json.dumps(call), json.dumps(files), str(log), f"job={verdict}"])
    record = read_error_record(out / "speech.error.json")
    assert record["kind"] == "input" and SCHEMA_ERROR in record["message"]
    assert SCHEMA_ERROR in log.read_text(encoding="utf-8")
