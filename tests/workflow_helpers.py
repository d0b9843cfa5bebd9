"""Running the real workflow on a small config in a temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from vestnik.config import load_config

ROOT = Path(__file__).resolve().parents[1]
AVATAR = ROOT / "resources" / "avatar.png"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")

CASPIAN = (
    "В настоящее время реализуется проект строительства волоконно-оптической линии по дну "
    "Каспийского моря между Актау и Сумгаитом. Участники от Казахстана оператор Казахтелеком, "
    "от Азербайджана - Азертелеком. Протяжённость кабеля составляет 380 километров. Стоимость "
    "проекта составляет 44 миллиона долларов США. Завершение проекта ожидается в октябре "
    "2026 года."
)
"""The first default job's text: five sentences with numbers and abbreviations."""


def base_config(jobs: dict, **defaults) -> dict:
    """The repo's default config (every default filled in from the schema) with other jobs,
    and optional overrides of `defaults`."""
    config = load_config(ROOT / "config" / "config.yaml")
    config["defaults"]["avatar"] = str(AVATAR)
    for key, value in defaults.items():
        config["defaults"][key] = {**config["defaults"].get(key, {}), **value}
    config["jobs"] = jobs
    return config


def run_workflow(
    workdir: Path, config: dict, *targets: str, cores: int = 2, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """Write `config` into `workdir` and run snakemake there with the repo's Snakefile."""
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(
        yaml.safe_dump(config, allow_unicode=True), encoding="utf-8"
    )
    args = [
        str(SNAKEMAKE),
        "--snakefile", str(ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--profile", str(ROOT / "profiles" / "default"),
        "--cores", str(cores),
        *extra,
        *targets,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=1200)
