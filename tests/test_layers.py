"""The layering rules hold: boto3 only in infra/ and handlers/; the clock only behind
the Clock port in engine/ and sdk/ (ruff's banned-api rule, TID251)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


def ruff(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUFF, "check", "--no-cache", "--output-format", "concise", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed")
def test_the_project_obeys_its_layering_rules():
    result = ruff("--select", "TID251", ".", cwd=ROOT)
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed")
def test_the_rules_catch_boto3_and_the_wall_clock_in_the_pure_layers(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = "import boto3\nimport time\nfrom datetime import datetime\n\nT = time.time()\nN = datetime.now()\n"
    for layer in ("engine", "sdk"):
        (tmp_path / layer).mkdir()
        shutil.copy(ROOT / layer / "ruff.toml", tmp_path / layer / "ruff.toml")
        (tmp_path / layer / "bad.py").write_text(bad)
    (tmp_path / "infra").mkdir()
    (tmp_path / "infra" / "fine.py").write_text(bad)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "bad.py").write_text("import boto3\n")
    result = ruff("--select", "TID251", ".", cwd=tmp_path)
    lines = [line for line in result.stdout.splitlines() if "TID251" in line]
    assert sum("engine/bad.py" in line for line in lines) == 3
    assert sum("sdk/bad.py" in line for line in lines) == 3
    assert sum("examples/bad.py" in line for line in lines) == 1
    assert not any(line.startswith("infra/") for line in lines)
