"""One installed import name: a wheel built from the repository holds ``forgetwatch/`` only.

collectors/, evals/ and dashboard/ stay at the top of the repository and are
mapped into the package at build time (pyproject.toml, package-dir), so nothing
generic such as ``evals`` lands in site-packages.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = (".git", ".venv", "build", "*.egg-info", "test-artifacts", "demo-workspace", "tests",
        "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "*.duckdb*")  # fmt: skip


def test_wheel_holds_only_forgetwatch(tmp_path: Path) -> None:
    # Built from a copy, so the in-tree build leaves nothing in the checkout.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*SKIP))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("forgetwatch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"forgetwatch", f"{wheel.name.split('-py3')[0]}.dist-info"}, tops
    for packaged in (
        "forgetwatch/collectors/lm_eval_results.py",
        "forgetwatch/evals/job_main.py",
        "forgetwatch/evals/tasks/fw_unknown.yaml",
        "forgetwatch/evals/tasks/data/unknown.jsonl",
        "forgetwatch/dashboard/app.py",
        "forgetwatch/dashboard/views/runs.py",
        "forgetwatch/suites/offline.yaml",
        "forgetwatch/py.typed",
    ):
        assert packaged in names, packaged
