#!/usr/bin/env bash
# Proof that profiles/slurm works on a real SLURM: a one-node cluster on localhost (Debian's
# slurm-wlm and munge) runs a small config with `--profile profiles/slurm`; every job must go
# through sbatch and finish COMPLETED, and each final.mp4 must match a local run of the same config
# (streams, frame count, duration). Everything it starts is stopped again on exit.
#
#   sudo tests/cluster/run_slurm.sh        # or as root; exit 0 = passed, 77 = skipped, else failed
#
# Environment: VESTNIK_PYTHON (default .venv/bin/python), VESTNIK_SLURM_KEEP=1 keeps the scratch
# folder for inspection, VESTNIK_SLURM_NO_INSTALL=1 never calls apt-get.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${VESTNIK_PYTHON:-$ROOT/.venv/bin/python}"
BIN="$(dirname "$PYTHON")"
SKIP=77
T0=$(date +%s)

say() { printf '[%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
skip() { say "SKIP: $*"; exit "$SKIP"; }
fail() { say "FAIL: $*"; exit 1; }

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    skip "needs root or password-less sudo to start slurmctld, slurmd and munged"
fi
[[ -x "$PYTHON" ]] || fail "no Python at $PYTHON (set VESTNIK_PYTHON)"
[[ -x "$BIN/snakemake" ]] || fail "no snakemake beside $PYTHON"
"$PYTHON" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
    || skip "snakemake-executor-plugin-slurm is not installed (pip install -e '.[slurm]')"

# --- 1. SLURM and munge from Debian packages ------------------------------------------------------
have_slurm() {
    command -v slurmctld && command -v slurmd && command -v munged && command -v sbatch
} >/dev/null
if ! have_slurm; then
    [[ "${VESTNIK_SLURM_NO_INSTALL:-0}" == 1 ]] && skip "SLURM is not installed"
    command -v apt-get >/dev/null || skip "SLURM is not installed and apt-get is unavailable"
    say "installing slurm-wlm and munge with apt-get"
    "${SUDO[@]}" apt-get update -qq >/dev/null 2>&1 || skip "apt-get update failed (offline?)"
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq slurm-wlm munge \
        >/dev/null 2>&1 || skip "apt-get install slurm-wlm munge failed"
fi
have_slurm || skip "slurm-wlm installed but its daemons are not on PATH"
id munge >/dev/null 2>&1 || skip "no munge user (the munge package creates it)"
say "SLURM $(slurmd -V | awk '{print $2}'), $(munged --version | awk '{print $1}')"

# --- 2. a private one-node cluster: own config, sockets, ports and spool folders -----------------
WORK="$(mktemp -d /tmp/vestnik-slurm.XXXXXX)"
chmod 755 "$WORK"
PIDS=()

teardown() {
    local rc=$?
    set +e
    if [[ -f "$WORK/etc/slurm.conf" ]]; then
        SLURM_CONF="$WORK/etc/slurm.conf" scancel --user "$(id -un)" >/dev/null 2>&1
    fi
    local pidfile pid
    for pidfile in "${PIDS[@]}"; do
        pid="$(cat "$pidfile" 2>/dev/null)" || continue
        [[ -n "$pid" ]] && "${SUDO[@]}" kill "$pid" 2>/dev/null
    done
    for pidfile in "${PIDS[@]}"; do
        pid="$(cat "$pidfile" 2>/dev/null)" || continue
        for _ in $(seq 100); do "${SUDO[@]}" kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if "${SUDO[@]}" kill -0 "$pid" 2>/dev/null; then
            say "process $pid ($pidfile) ignored SIGTERM; killing it"
            "${SUDO[@]}" kill -9 "$pid" 2>/dev/null
        fi
    done
    if head -1 /etc/slurm/slurm.conf 2>/dev/null | grep -qx "# vestnik-slurm-test $WORK"; then
        "${SUDO[@]}" rm -f /etc/slurm/slurm.conf
    fi
    if [[ "${VESTNIK_SLURM_KEEP:-0}" == 1 ]]; then
        say "kept $WORK"
    else
        "${SUDO[@]}" rm -rf "$WORK"
    fi
    say "torn down (exit $rc)"
    exit "$rc"
}
trap teardown EXIT
trap 'exit 130' INT TERM

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
while [[ "$SLURMD_PORT" == "$CTLD_PORT" ]]; do SLURMD_PORT=$(free_port); done
HOST="$(hostname -s)"
CPUS="$(nproc)"
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))

mkdir -p "$WORK/etc" "$WORK/spool/ctld" "$WORK/spool/d" "$WORK/log" "$WORK/munge"
"${SUDO[@]}" chown munge:munge "$WORK/munge"
"${SUDO[@]}" chmod 755 "$WORK/munge"
"${SUDO[@]}" runuser -u munge -- sh -c \
    "umask 077; head -c 1024 /dev/urandom > '$WORK/munge/munge.key'"
MUNGE_SOCKET="$WORK/munge/munge.socket"

"${SUDO[@]}" runuser -u munge -- munged \
    --socket="$MUNGE_SOCKET" --key-file="$WORK/munge/munge.key" \
    --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" \
    --seed-file="$WORK/munge/munged.seed" || fail "munged did not start (see $WORK/munge)"
PIDS+=("$WORK/munge/munged.pid")
munge --socket="$MUNGE_SOCKET" -n | unmunge --socket="$MUNGE_SOCKET" >/dev/null \
    || fail "munge credentials do not round-trip"

export SLURM_CONF="$WORK/etc/slurm.conf"
cat > "$SLURM_CONF" <<EOF
ClusterName=vestnik-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/filetxt
JobCompLoc=$WORK/log/jobcomp.txt
MinJobAge=600
StateSaveLocation=$WORK/spool/ctld
SlurmdSpoolDir=$WORK/spool/d
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST MaxTime=INFINITE State=UP
EOF

# The job step executor drops SLURM_CONF from the environment of its `srun`, so the config must
# also sit at SLURM's default path. A leftover copy from an earlier run is replaced; any other
# configuration there means a real cluster, which this script does not touch.
SYSTEM_CONF=/etc/slurm/slurm.conf
MARK="# vestnik-slurm-test"
if [[ -e "$SYSTEM_CONF" ]]; then
    head -1 "$SYSTEM_CONF" | grep -q "^$MARK" \
        || skip "$SYSTEM_CONF exists: this machine has its own SLURM setup"
fi
"${SUDO[@]}" mkdir -p /etc/slurm
{ echo "$MARK $WORK"; cat "$SLURM_CONF"; } | "${SUDO[@]}" tee "$SYSTEM_CONF" >/dev/null
"${SUDO[@]}" chmod 644 "$SYSTEM_CONF"

"${SUDO[@]}" slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start: $(tail -5 "$WORK/log/slurmctld.log")"
PIDS+=("$WORK/slurmctld.pid")
"${SUDO[@]}" slurmd -f "$SLURM_CONF" || fail "slurmd did not start: $(tail -5 "$WORK/log/slurmd.log")"
PIDS+=("$WORK/slurmd.pid")
for _ in $(seq 60); do
    state="$(sinfo -h -N -o %T 2>/dev/null | head -1)"
    [[ "$state" == idle ]] && break
    sleep 0.5
done
[[ "$state" == idle ]] || fail "node is '$state', not idle: $(tail -5 "$WORK/log/slurmctld.log")"
say "cluster up: node $HOST, $CPUS CPUs, $MEM_MB MB, partitions $(sinfo -h -o %P | tr '\n' ' ')"

# --- 3. the same small config, run locally and through SLURM --------------------------------------
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$BIN:$PATH"
"$PYTHON" - "$WORK" "$ROOT" <<'EOF'
import sys
from pathlib import Path

import yaml

sys.path.insert(0, sys.argv[2])
from tests.workflow_helpers import base_config

jobs = {
    "greeting": {
        "text": "Здравствуйте! Меня зовут Вестник. Сегодня хорошая погода.",
        "chunks": {"workers": 2, "min_seconds": 1.0},
    },
    "short": {"text": "Спасибо за внимание."},
}
for run in ("local", "slurm"):
    folder = Path(sys.argv[1]) / run / "config"
    folder.mkdir(parents=True)
    config = base_config(jobs)
    if run == "slurm":  # plus one training job on two CPU processes (torchrun, gloo)
        sentences = folder / "sentences.txt"
        lines = (Path(sys.argv[2]) / "resources" / "texts" / "corpus_sentences.txt").read_text(
            encoding="utf-8").splitlines()[:6]
        sentences.write_text("\n".join(lines) + "\n", encoding="utf-8")
        config["ruslan"].update(espeak_sentences=str(sentences), shards=1, val_size=1)
        config["vocoder"].update(threads=2, experiments={"ranks": {
            "generator": {"base": "v3", "upsample_initial_channel": 16},
            "discriminator_width": 0.0625, "segment": 2048, "batch_size": 2,
            "accumulation": 1, "steps": 4, "log_interval": 2, "val_interval": 4,
            "checkpoint_interval": 4, "val_items": 1, "samples": 0, "device": "cpu",
            "world_size": 2}})
    (folder / "config.yaml").write_text(
        yaml.safe_dump(config, allow_unicode=True), encoding="utf-8"
    )
EOF

say "local run (profiles/default, 2 cores)"
(cd "$WORK/local" && snakemake --snakefile "$ROOT/Snakefile" --profile "$ROOT/profiles/default" \
    --cores 2 >"$WORK/local.log" 2>&1) || fail "local run failed: $(tail -30 "$WORK/local.log")"
say "local run done"

say "SLURM run (profiles/slurm)"
SLURM_START=$(date +%s)
(cd "$WORK/slurm" && snakemake --snakefile "$ROOT/Snakefile" --profile "$ROOT/profiles/slurm" \
    --slurm-no-account --slurm-status-command squeue --slurm-keep-successful-logs \
    --slurm-init-seconds-before-status-checks 2 --max-status-checks-per-second 2 \
    all results/models/vocoder/ranks/generator.pt \
    >"$WORK/slurm.log" 2>&1) || fail "SLURM run failed: $(tail -40 "$WORK/slurm.log")"
grep -q "ranks: starting 2 ranks with torchrun" "$WORK/slurm/logs/vocoder/ranks/train.log" \
    || fail "the training job did not run 2 ranks: $(tail -20 "$WORK/slurm/logs/vocoder/ranks/train.log")"
"$PYTHON" -c "import sys, torch; m = torch.load(sys.argv[1], weights_only=True); \
assert m['steps'] == 4, m['steps']" "$WORK/slurm/results/models/vocoder/ranks/generator.pt" \
    || fail "the 2-rank training job exported no 4-step generator"
say "SLURM run done in $(( $(date +%s) - SLURM_START )) s"

# --- 4. checks: every job through sbatch, COMPLETED, same videos ---------------------------------
"$PYTHON" - "$WORK" <<'EOF'
import re
import sys
from pathlib import Path

from vestnik.media import probe

work = Path(sys.argv[1])
log = (work / "slurm.log").read_text(encoding="utf-8")
rules = {}
for match in re.finditer(r"^(?:local)?(?:rule|checkpoint) (\w+):\n(?:    .*\n)*?    jobid: (\d+)", log, re.M):
    rules[match.group(2)] = match.group(1)
submitted = dict(re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log))
local_only = {"all", "render_gate", "plan_chunks", "merge"}  # its `localrule: True` rules
expected = {j for j, r in rules.items() if r not in local_only}
missing = sorted(expected - set(submitted), key=int)
if not expected or missing:
    sys.exit(f"FAIL: jobs not submitted with sbatch: {[(j, rules[j]) for j in missing]}")

records = {}
for line in (work / "log" / "jobcomp.txt").read_text().splitlines():
    fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
    records[fields["JobId"]] = fields
bad = {
    sid: records.get(sid, {}).get("JobState", "not in the SLURM job record")
    for sid in submitted.values()
    if records.get(sid, {}).get("JobState") != "COMPLETED"
}
if bad:
    sys.exit(f"FAIL: SLURM jobs not COMPLETED: {bad}")
partitions = sorted({records[s]["Partition"] for s in submitted.values()})
per_rule = {}
for job in submitted:
    per_rule[rules[job]] = per_rule.get(rules[job], 0) + 1
print(f"{len(submitted)} jobs through sbatch, all COMPLETED, partitions {partitions}: {per_rule}")
slurm_logs = list((work / "slurm" / "logs" / "slurm").rglob("*.log"))
if len(slurm_logs) != len(submitted):
    sys.exit(f"FAIL: {len(slurm_logs)} SLURM job logs for {len(submitted)} jobs")


def summary(path):
    info = probe(path)
    return info["streams"], info["video_frames"], info["duration"]


finals = sorted((work / "local" / "results" / "jobs").glob("*/final.mp4"))
if len(finals) != 2:
    sys.exit(f"FAIL: local run made {len(finals)} final.mp4 files, expected 2")
for local in finals:
    remote = work / "slurm" / local.relative_to(work / "local")
    if not remote.is_file():
        sys.exit(f"FAIL: {remote} is missing")
    a, b = summary(local), summary(remote)
    if a != b:
        sys.exit(f"FAIL: {remote.parent.name}: local {a} != SLURM {b}")
    print(f"{remote.parent.name}: same streams, {a[1]} frames, {a[2]} s")
EOF
say "PASS"
