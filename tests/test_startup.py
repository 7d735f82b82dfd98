"""Start-up stays cheap: the command line imports no heavy package until a command needs it."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "lm_eval", "mlflow", "streamlit", "scipy", "pandas", "plotly")


def _imported_after(code: str) -> set[str]:
    """The heavy top-level packages a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(done.stdout.split()) & set(HEAVY)


def test_importing_the_cli_imports_no_heavy_package() -> None:
    assert _imported_after("import forgetwatch.cli.main") == set()


def test_building_the_help_imports_no_heavy_package() -> None:
    code = "from forgetwatch.cli.main import build_parser\nbuild_parser(['--help'], full=False)"
    assert _imported_after(code) == set()


def test_the_lazy_parser_lists_every_command_of_the_full_one() -> None:
    from forgetwatch.cli.main import build_parser

    full = build_parser().format_help()
    assert build_parser(["--help"], full=False).format_help() == full
