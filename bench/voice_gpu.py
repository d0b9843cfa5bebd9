"""Train the project's voice on one GPU in a few minutes, from a bundle that carries everything.

Two steps. Here, with the project's environment and a package registry (PyPI) reachable:

    .venv/bin/python bench/voice_gpu.py pack [--bundle .voice_bundle] [--kbps 64]

packs the vestnik source, config/voice.yaml and this script; festvox-ru compressed to Opus
(with its transcripts, phone labels and licence notice); wheels (CPython 3.12, manylinux) of the
light dependencies a bare PyTorch machine may lack; and a Russian-only copy of espeakng-loader
(the eSpeak NG library the phonemiser calls). The bundle must stay under 64 MiB, the most a
device call carries. On the GPU machine (Python 3.12 + torch, no snakemake, no internet):

    python3 .voice_bundle/voice_gpu.py train --bundle .voice_bundle --out "$OUT" --budget 420

unpacks the source into a work folder, installs only the wheels whose modules are missing,
decodes the corpus and converts, scans, preprocesses and splits it with the workflow's own
functions (vestnik.corpus), trains the `voice` acoustic model and vocoder of config/voice.yaml
side by side through vestnik.training (the project's one loop) for the wall budget: a short
probe measures each one's steps/s, and its step count is raised to fill the budget (raising
`steps` resumes). It then scores both on the held-out recordings, builds a voice folder
(vestnik.voice.build, ONNX graphs checked against torch) and writes to $OUT: acoustic.pt,
generator.pt, summary.json and report.tar.gz (logs, evaluations, the folder's README,
manifest, metrics and val_ids.txt). PESQ has no wheel for the GPU machine, so the shipping
gate is applied back here, on the original recordings:

    vestnik voice export festvox-ru --acoustic acoustic.pt --vocoder generator.pt \
        --config config/voice.yaml --trained-on "..." --wall-time "..."

Rehearsal on a CPU, end to end in a minute or two (40 utterances, small models):

    nice -n 10 .venv/bin/python bench/voice_gpu.py pack --bundle /tmp/vb --subset 40 --no-wheels
    nice -n 10 .venv/bin/python bench/voice_gpu.py train --bundle /tmp/vb --out /tmp/vout --quick

Only the standard library is imported before the bundle's source is on the path.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
BUNDLE_LIMIT = 64 * 1024 * 1024
"""The most a device call carries (the working tree with it must fit too)."""
WHEELS = {
    # distribution==version: the module whose absence calls for it
    "soundfile==0.14.0": "soundfile", "cffi": "cffi", "pycparser": "pycparser",
    "soxr==1.1.0": "soxr", "jsonschema==4.26.0": "jsonschema",
    "jsonschema-specifications": "jsonschema_specifications", "referencing": "referencing",
    "rpds-py": "rpds", "num2words==0.5.14": "num2words", "docopt==0.6.2": "docopt",
    "ffmpeg-python": "ffmpeg", "future": "future", "pystoi==0.4.1": "pystoi",
    "typing-extensions": "typing_extensions", "attrs": "attrs",
}
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
ESPEAK_LANGUAGE_FILES = ("ru_dict", "en_dict")
"""eSpeak NG dictionaries kept (Russian, and English for Latin words); the others are left."""
VOICE = "voice"
"""The experiment name of config/voice.yaml's acoustic and vocoder blocks."""
QUICK_ACOUSTIC = {"model": {"hidden": 64, "prenet_layers": 1, "encoder_layers": 1,
                            "ffn_hidden": 128, "duration_hidden": 64, "decoder_hidden": 64,
                            "decoder_layers": 2},
                  "batch_size": 8, "warmup_steps": 20, "val_items": 4, "plots": 1}
QUICK_VOCODER = {"generator": {"base": "v3", "upsample_initial_channel": 16},
                 "discriminator_width": 0.125, "segment": 4096, "batch_size": 2,
                 "val_items": 4, "samples": 1}
"""--quick: the rehearsal's shapes (the recipe's own are sized for a GPU)."""
FESTVOX_VOICE = "usr/share/festival/voices/russian/msu_ru_nsh_clunits"
FESTVOX_NOTICE = "usr/share/doc/festvox-ru/copyright"


def log(message: str) -> None:
    print(f"[voice_gpu {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- pack (here) ---------------------------------------------------------------------------------

def _opus_level(kbps: float) -> float:
    """libsndfile's Opus `compression_level` for a bitrate: 0 is 256 kbit/s, 1 is 6 kbit/s."""
    return min(1.0, max(0.0, (256.0 - kbps) / 250.0))


def _encode(job: tuple[str, str, float]) -> tuple[int, int]:
    import soundfile as sf

    source, target, level = job
    audio, rate = sf.read(source, dtype="float32")
    sf.write(target, audio, rate, format="OGG", subtype="OPUS", compression_level=level)
    return len(audio), sf.info(target).frames


def pack_corpus(festvox_root: Path, bundle: Path, kbps: float, subset: int | None) -> dict:
    """corpus.tar: opus/<id>.opus, etc/txt.done.data, lab/<id>.lab, COPYRIGHT."""
    sys.path.insert(0, str(ROOT / "src"))
    from vestnik.corpus import festvox

    voice = festvox.voice_dir(festvox_root)
    rows = festvox.read_transcripts(voice / "etc" / "txt.done.data")[: subset or None]
    staging = Path(tempfile.mkdtemp(prefix="voice-corpus-"))
    try:
        for folder in ("opus", "etc", "lab"):
            (staging / folder).mkdir()
        (staging / "etc" / "txt.done.data").write_text(
            "".join(f'( {ident} "{text}" )\n' for ident, text in rows), encoding="utf-8")
        jobs = []
        for ident, _ in rows:
            if (voice / "wav" / f"{ident}.wav").is_file():
                jobs.append((str(voice / "wav" / f"{ident}.wav"),
                             str(staging / "opus" / f"{ident}.opus"), _opus_level(kbps)))
            if (voice / "lab" / f"{ident}.lab").is_file():
                shutil.copyfile(voice / "lab" / f"{ident}.lab", staging / "lab" / f"{ident}.lab")
        notice = Path(str(voice).removesuffix(festvox.VOICE_DIR)) / festvox.COPYRIGHT
        shutil.copyfile(notice, staging / "COPYRIGHT")
        with concurrent.futures.ProcessPoolExecutor(os.cpu_count()) as pool:
            lengths = list(pool.map(_encode, jobs, chunksize=8))
        with tarfile.open(bundle / "corpus.tar", "w") as tar:
            tar.add(staging, arcname="corpus")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = sum(n for n, _ in lengths) / 16000
    return {"recordings": len(jobs), "seconds": round(seconds, 1), "kbps": kbps,
            "max_length_difference_samples": max((abs(a - b) for a, b in lengths), default=0),
            "bytes": (bundle / "corpus.tar").stat().st_size}


def pack_source(bundle: Path) -> int:
    """source.tar.gz: src/vestnik (the schema link followed), config/, this script."""

    def skip(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        return None if "__pycache__" in info.name or info.name.endswith(".pyc") else info

    with tarfile.open(bundle / "source.tar.gz", "w:gz", dereference=True) as tar:
        tar.add(ROOT / "src" / "vestnik", arcname="src/vestnik", filter=skip)
        for name in ("config.yaml", "schema.yaml", "voice.yaml"):
            tar.add(ROOT / "config" / name, arcname=f"config/{name}")
    shutil.copyfile(HERE, bundle / HERE.name)
    return (bundle / "source.tar.gz").stat().st_size


def pack_wheels(bundle: Path) -> int:
    """wheels/: CPython 3.12 manylinux wheels of WHEELS (docopt has none: built here)."""
    wheels = bundle / "wheels"
    wheels.mkdir(exist_ok=True)
    binary = [name for name in WHEELS if not name.startswith("docopt")]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
               "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
               *[arg for p in PLATFORMS for arg in ("--platform", p)], "-d", str(wheels), *binary]
    subprocess.run(command, check=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                    *[name for name in WHEELS if name.startswith("docopt")]], check=True)
    return sum(p.stat().st_size for p in wheels.iterdir())


def pack_espeak(bundle: Path) -> int:
    """espeakng_loader.tar.xz: the package with only the Russian and English dictionaries."""
    import espeakng_loader

    package = Path(espeakng_loader.__file__).parent

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        name = Path(info.name).name
        if "__pycache__" in info.name:
            return None
        if name.endswith("_dict") and name not in ESPEAK_LANGUAGE_FILES:
            return None
        return info

    with tarfile.open(bundle / "espeakng_loader.tar.xz", "w:xz") as tar:
        tar.add(package, arcname="espeakng_loader", filter=keep)
    return (bundle / "espeakng_loader.tar.xz").stat().st_size


def pack(args: argparse.Namespace) -> None:
    bundle = Path(args.bundle)
    if bundle.exists():
        shutil.rmtree(bundle)
    bundle.mkdir(parents=True)
    festvox_root = Path(args.festvox_root).expanduser()
    record = {"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "corpus": pack_corpus(festvox_root, bundle, args.kbps, args.subset),
              "source_bytes": pack_source(bundle),
              "wheels_bytes": 0 if args.no_wheels else pack_wheels(bundle),
              "espeak_bytes": pack_espeak(bundle)}
    total = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    record["total_bytes"] = total
    digest = hashlib.sha256((bundle / "corpus.tar").read_bytes()).hexdigest()[:16]
    record["corpus"]["sha256"] = digest
    (bundle / "bundle.json").write_text(json.dumps(record, indent=1))
    log(f"bundle {bundle}: {total / 2**20:.1f} MiB ({json.dumps(record)})")
    if total > BUNDLE_LIMIT:
        raise SystemExit(f"the bundle is {total / 2**20:.1f} MiB, over the 64 MiB a device call "
                         "carries: pack with a lower --kbps or a --subset")


# --- train (on the GPU machine) ------------------------------------------------------------------

def setup(bundle: Path, work: Path) -> None:
    """The bundle's source first on sys.path; missing modules from its wheels, last."""
    source = work / "source"
    if not source.is_dir():
        with tarfile.open(bundle / "source.tar.gz") as tar:
            tar.extractall(source, filter="data")
    site = work / "site"
    missing = [wheel for wheel, module in WHEELS.items() if importlib.util.find_spec(module)
               is None]
    if missing and (bundle / "wheels").is_dir():
        files = [str(p) for p in sorted((bundle / "wheels").glob("*.whl"))
                 if any(p.name.lower().startswith(w.split("==")[0].replace("-", "_") + "-")
                        for w in missing)]
        log(f"installing {len(files)} wheels for missing modules: {', '.join(missing)}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                        "--no-compile", "--target", str(site), *files], check=True)
    if importlib.util.find_spec("espeakng_loader") is None:
        with tarfile.open(bundle / "espeakng_loader.tar.xz") as tar:
            tar.extractall(site, filter="data")
    sys.path.insert(0, str(source / "src"))
    sys.path.append(str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(source / "src"), *sys.path[1:]])


def _decode(job: tuple[str, str]) -> None:
    import soundfile as sf

    source, target = job
    audio, rate = sf.read(source, dtype="float32")
    sf.write(target, audio, rate, subtype="PCM_16")


def prepare_corpus(bundle: Path, work: Path, config: dict, subset: int | None) -> dict:
    """The workflow's corpus steps on the decoded recordings, under work/ (cwd)."""
    from vestnik import layout
    from vestnik.corpus import festvox
    from vestnik.corpus.manifest import scan_corpus
    from vestnik.corpus.preprocess import CleanSettings, process_shard
    from vestnik.corpus.split import finalize_corpus

    ruslan = config["ruslan"]
    package = work / "festvox"
    voice = package / FESTVOX_VOICE
    with tarfile.open(bundle / "corpus.tar") as tar:
        tar.extractall(work / "packed", filter="data")
    packed = work / "packed" / "corpus"
    rows = festvox.read_transcripts(packed / "etc" / "txt.done.data")[: subset or None]
    for folder in ("wav", "etc", "lab"):
        (voice / folder).mkdir(parents=True, exist_ok=True)
    (voice / "etc" / "txt.done.data").write_text(
        "".join(f'( {ident} "{text}" )\n' for ident, text in rows), encoding="utf-8")
    (package / FESTVOX_NOTICE).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(packed / "COPYRIGHT", package / FESTVOX_NOTICE)
    jobs = []
    for ident, _ in rows:
        if (packed / "lab" / f"{ident}.lab").is_file():
            shutil.copyfile(packed / "lab" / f"{ident}.lab", voice / "lab" / f"{ident}.lab")
        if (packed / "opus" / f"{ident}.opus").is_file():
            jobs.append((str(packed / "opus" / f"{ident}.opus"), str(voice / "wav" /
                                                                     f"{ident}.wav")))
    cores = os.cpu_count() or 1
    with concurrent.futures.ProcessPoolExecutor(cores) as pool:
        list(pool.map(_decode, jobs, chunksize=8))
    root = Path(layout.FESTVOX_CORPUS)
    festvox.convert(package, root)
    scan_corpus(root, layout.CORPUS_SCAN, ruslan["shards"], ruslan["source_rate"])
    clean = CleanSettings.from_config(ruslan)
    shards = [layout.fill(layout.CORPUS_SHARD, shard=i) for i in range(ruslan["shards"])]
    with concurrent.futures.ProcessPoolExecutor(min(cores, len(shards))) as pool:
        list(pool.map(process_shard, [root] * len(shards), [layout.CORPUS_SCAN] * len(shards),
                      range(len(shards)), shards, [clean] * len(shards)))
    return finalize_corpus(layout.CORPUS_SCAN, shards, layout.CORPUS_FILES,
                           ruslan["val_size"], ruslan["seed"])


def _last_rate(log_csv: Path) -> float:
    import csv

    with open(log_csv, newline="") as handle:
        rates = [float(r["steps_per_s"]) for r in csv.DictReader(handle) if r.get("steps_per_s")]
    return rates[-1] if rates else 0.0


def train_one(kind: str, block: dict, deadline: float, probe: int, threads: int) -> dict:
    """Train one experiment until `deadline` (epoch seconds): a probe of `probe` steps, then
    the step count its measured speed fills, resumed from the probe's state."""
    from vestnik import layout

    if kind == "acoustic":
        from vestnik.acoustic.train import train_acoustic as train
    else:
        from vestnik.vocoder.train import train_vocoder as train
    out_dir = Path(layout.TRAINED_MODEL[kind].format(name=VOICE)).parent
    started = time.time()
    steps = {"steps": probe, "val_interval": probe, "checkpoint_interval": probe,
             "log_interval": max(1, min(block["log_interval"], probe // 2))}
    if kind == "vocoder":
        steps["sample_interval"] = probe
    train(VOICE, {**block, **steps}, layout.CORPUS_TRAIN, layout.CORPUS_VAL, out_dir, threads)
    rate = _last_rate(out_dir / "train_log.csv")
    left = deadline - time.time()
    total = probe + max(0, int(rate * left * 0.92))
    if total > probe:
        interval = max(probe, total // 4)
        steps = {"steps": total, "val_interval": interval, "checkpoint_interval": interval,
                 "log_interval": block["log_interval"]}
        if kind == "vocoder":
            steps["sample_interval"] = total
        train(VOICE, {**block, **steps}, layout.CORPUS_TRAIN, layout.CORPUS_VAL, out_dir,
              threads)
    return {"kind": kind, "steps": total, "probe_steps_per_s": round(rate, 3),
            "wall_s": round(time.time() - started, 1), "folder": str(out_dir)}


def _child(args: argparse.Namespace) -> None:
    """One training, in its own process (the two run side by side on one device)."""
    import torch

    setup(Path(args.bundle), Path(args.work))
    os.chdir(args.work)
    torch.set_num_threads(args.threads)
    block = json.loads(args.block)
    result = train_one(args.kind, block, args.deadline, args.probe, args.threads)
    Path(args.result).write_text(json.dumps(result))


def _blocks(config: dict, device: str, quick: bool) -> dict[str, dict]:
    blocks = {kind: dict(config[kind]["experiments"][VOICE]) for kind in ("acoustic", "vocoder")}
    if quick:
        blocks["acoustic"].update(QUICK_ACOUSTIC)
        blocks["vocoder"].update(QUICK_VOCODER)
    for block in blocks.values():
        block["device"] = device
    return blocks


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    import platform

    return f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()} " \
           f"(torch {torch.__version__})"


def train(args: argparse.Namespace) -> None:
    began = time.time()
    bundle, out = Path(args.bundle).resolve(), Path(args.out).resolve()
    work = Path(args.work or tempfile.mkdtemp(prefix="voice-work-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    setup(bundle, work)
    import torch

    from vestnik import layout
    from vestnik.config import load_configs
    from vestnik.runner import setup_logging

    setup_logging()
    os.chdir(work)
    source = work / "source" / "config"
    config = load_configs(source / "config.yaml", source / "voice.yaml")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    summary: dict = {"device": _device_name(device), "budget_s": args.budget,
                     "quick": args.quick, "bundle": json.loads((bundle / "bundle.json")
                                                               .read_text())}

    def save() -> None:
        (out / "summary.json").write_text(json.dumps(summary, indent=1))

    corpus = prepare_corpus(bundle, work, config, 40 if args.quick else None)
    summary["corpus"] = corpus
    summary["prepare_s"] = round(time.time() - began, 1)
    save()
    log(f"corpus ready in {summary['prepare_s']} s: {json.dumps(corpus)[:300]}")
    blocks = _blocks(config, device, args.quick)
    deadline = time.time() + args.budget
    threads = args.threads or max(1, (os.cpu_count() or 2) // 2)
    children = {}
    for kind, block in blocks.items():
        result = work / f"{kind}.result.json"
        probe = args.probe or (20 if args.quick else 200)
        command = [sys.executable, str(HERE), "_child", "--bundle", str(bundle), "--work",
                   str(work), "--kind", kind, "--block", json.dumps(block), "--deadline",
                   str(deadline), "--probe", str(probe), "--threads", str(threads),
                   "--result", str(result)]
        handle = open(work / f"{kind}.log", "w")  # noqa: SIM115 (closed below)
        children[kind] = (subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT),
                          handle, result)
    failed = []
    for kind, (process, handle, result) in children.items():
        code = process.wait()
        handle.close()
        if code != 0 or not result.is_file():
            failed.append(kind)
            log(f"{kind} training failed ({code}); its log: "
                + (work / f"{kind}.log").read_text()[-3000:])
            continue
        summary[kind] = json.loads(result.read_text())
        log(f"{kind}: {summary[kind]}")
    summary["train_wall_s"] = round(time.time() - deadline + args.budget, 1)
    save()
    if failed:
        raise SystemExit(f"training failed: {', '.join(failed)}")
    acoustic = Path(layout.ACOUSTIC_MODEL.format(name=VOICE))
    generator = Path(layout.VOCODER_GENERATOR.format(name=VOICE))
    summary["held_out"] = finish(acoustic, generator, out, work, config, device, summary,
                                 args.eval_limit)
    summary["total_s"] = round(time.time() - began, 1)
    save()
    log(f"done in {summary['total_s']} s: {json.dumps(summary['held_out'])[:600]}")


def finish(acoustic: Path, generator: Path, out: Path, work: Path, config: dict, device: str,
           summary: dict, limit: int | None) -> dict:
    """Weights into $OUT at once; then the held-out scores, a voice folder (gate forced: PESQ
    is scored back on the original recordings) and the report archive."""
    from vestnik import layout
    from vestnik.corpus.preprocess import CleanSettings
    from vestnik.voice.build import build_voice, evaluate
    from vestnik.voice.package import MAX_FILE_BYTES

    for source, name in ((acoustic, "acoustic.pt"), (generator, "generator.pt")):
        shutil.copyfile(source, out / name)
        if (out / name).stat().st_size > MAX_FILE_BYTES:
            from vestnik.voice.build import _weights_file

            _weights_file(source, out / name, "model" if name == "acoustic.pt" else "generator")
    ruslan = config["ruslan"]
    clean = CleanSettings.from_config(ruslan)
    metrics = evaluate(acoustic, generator, Path(layout.CORPUS_VAL), Path(layout.FESTVOX_CORPUS),
                       clean, limit, device)
    folder = build_voice(work / "voices" / "candidate", acoustic=acoustic, generator=generator,
                         val_tsv=layout.CORPUS_VAL, corpus_root=layout.FESTVOX_CORPUS,
                         metrics=metrics, force=True, config=work / "source/config/voice.yaml",
                         trained_on=summary["device"],
                         wall_time=f"{summary.get('train_wall_s')} s")
    with tarfile.open(out / "report.tar.gz", "w:gz") as tar:
        for name in ("README.md", "metrics.json", "voice.json", "val_ids.txt"):
            tar.add(folder / name, arcname=f"voice/{name}")
        for kind in ("acoustic", "vocoder"):
            experiment = Path(layout.TRAINED_MODEL[kind].format(name=VOICE)).parent
            for name in ("train_log.csv", "experiment.json", "curves.png", "provenance.json"):
                if (experiment / name).is_file():
                    tar.add(experiment / name, arcname=f"{kind}/{name}")
            if (work / f"{kind}.log").is_file():
                tar.add(work / f"{kind}.log", arcname=f"{kind}/train.log")
        for name in ("summary.json",):
            tar.add(layout.CORPUS_SUMMARY, arcname=f"corpus/{name}")
    return {"vocoder": {k: metrics["vocoder"].get(k) for k in
                        ("utterances", "mel_l1", "mcd_db", "lsd_db", "pesq_wb", "stoi")},
            "acoustic": {k: metrics["acoustic"].get(k) for k in
                         ("utterances", "mel_l1", "mcd_db", "length_error",
                          "boundary_error_ms")},
            "gate_problems": json.loads((folder / "metrics.json").read_text())["gate"]
            ["problems"],
            "onnx_max_difference": json.loads((folder / "voice.json").read_text())
            ["onnx_max_difference"]}


def check(args: argparse.Namespace) -> None:
    """The bundle on this machine without training: wheels for missing modules, the source,
    the config, eSpeak NG's Russian phonemes and one recording decoded (no torch needed)."""
    bundle, work = Path(args.bundle).resolve(), Path(tempfile.mkdtemp(prefix="voice-check-"))
    setup(bundle, work)
    import soundfile as sf

    from vestnik.acoustic import symbols
    from vestnik.config import load_configs
    from vestnik.text.normalize import normalize

    config = load_configs(work / "source/config/config.yaml", work / "source/config/voice.yaml")
    tokens = symbols.text_tokens(normalize("Старый з+амок стоял на горе в 2026 году.",
                                           stress=True))
    with tarfile.open(bundle / "corpus.tar") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".opus"))
        tar.extract(member, work, filter="data")
    audio, rate = sf.read(work / member.name, dtype="float32")
    log(f"bundle works here: config {sorted(config['vocoder']['experiments'])}, "
        f"{len(tokens.ids)} tokens ({' '.join(tokens.symbols[:12])} ...), "
        f"{member.name}: {len(audio) / rate:.2f} s at {rate} Hz")
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="make the bundle (here)")
    p.add_argument("--bundle", default=str(ROOT / ".voice_bundle"))
    p.add_argument("--festvox-root", default="~/.cache/vestnik/festvox-ru/unpacked")
    p.add_argument("--kbps", type=float, default=64.0, help="Opus bitrate of the corpus")
    p.add_argument("--subset", type=int, default=None, help="first N recordings only")
    p.add_argument("--no-wheels", action="store_true", help="leave the wheels out (rehearsal)")
    p.set_defaults(func=pack)
    t = sub.add_parser("train", help="train from the bundle (the GPU machine)")
    t.add_argument("--bundle", default=str(HERE.parent))
    t.add_argument("--out", required=True)
    t.add_argument("--work", default=None, help="work folder (default: a new temporary one)")
    t.add_argument("--budget", type=float, default=420.0, help="training wall seconds")
    t.add_argument("--device", default=None, help="default cuda when there is one, else cpu")
    t.add_argument("--threads", type=int, default=0, help="CPU threads per training")
    t.add_argument("--probe", type=int, default=0, help="steps of the speed probe")
    t.add_argument("--eval-limit", type=int, default=None, help="held-out recordings scored")
    t.add_argument("--quick", action="store_true",
                   help="rehearsal: 40 recordings, small models, one minute (--budget 60)")
    t.set_defaults(func=train)
    k = sub.add_parser("check", help="set the bundle up here and try its torch-free parts")
    k.add_argument("--bundle", default=str(HERE.parent))
    k.set_defaults(func=check)
    c = sub.add_parser("_child")
    for name in ("--bundle", "--work", "--kind", "--block", "--result"):
        c.add_argument(name, required=True)
    c.add_argument("--deadline", type=float, required=True)
    c.add_argument("--probe", type=int, required=True)
    c.add_argument("--threads", type=int, required=True)
    c.set_defaults(func=_child)
    args = parser.parse_args()
    if getattr(args, "quick", False) and args.budget == 420.0:
        args.budget = 60.0
    args.func(args)


if __name__ == "__main__":
    main()
