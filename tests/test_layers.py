"""The layering rules hold.

- boto3 only in infra/ and handlers/; the wall clock and randomness only behind the
  Clock port in engine/, sdk/ and the workflow code (ruff's banned-api rule, TID251, one
  config in pyproject.toml);
- imports point down: sdk/ and engine/ import no infra/, infra/'s tiers import only
  their own tier or lower, and nothing imports handlers/ (an AST scan of every module).
"""

from __future__ import annotations

import ast
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
    # The repository's one ruff config, as it is: no folder has a config of its own.
    assert sorted(ROOT.glob("*/ruff.toml")) == sorted(ROOT.glob("*/.ruff.toml")) == []
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = "import boto3\nimport time\nfrom datetime import datetime\n\nT = time.time()\nN = datetime.now()\n"
    for layer in ("engine", "sdk"):
        (tmp_path / layer).mkdir()
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


# -- import direction ----------------------------------------------------------------------
#
# Within infra/, three tiers (see infra/__init__.py), then the entry points:
#   0  the adapters and their helpers (dynamo, sqs, timers, eventbridge, settings, ...)
#   1  infra.wiring, which assembles the adapters
#   2  infra.lambda_batch and infra.lambda_functions, the Lambda functions' bodies
#   3  infra.local: LocalRuntime, the local Lambda service, workers, the CLI, rendering
#   4  handlers: the entry points Lambda names, which nothing imports
# A module may import modules of its own tier or below. The pure layers (sdk/, engine/)
# import neither infra/ nor handlers/.
#
# Only bench/ may import handlers/: it measures what Lambda loads (each handler module's
# import time) and invokes `handlers.engine.handler` as Lambda would. tests/test_deploy.py
# and tests/test_template.py reach the handlers the way Lambda does, by the Handler names
# of template.yaml (importlib, or a subprocess), never by an import statement.

SCANNED = ("sdk", "engine", "infra", "handlers", "examples", "workflows", "tests")


def tier(module: str) -> int | None:
    if module == "handlers" or module.startswith("handlers."):
        return 4
    if module == "infra.local" or module.startswith("infra.local."):
        return 3
    if module in ("infra.lambda_batch", "infra.lambda_functions"):
        return 2
    if module == "infra.wiring":
        return 1
    if module.startswith("infra."):
        return 0
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module an import statement in `path` names (at any depth, TYPE_CHECKING too),
    with `from package import name` counted as `package.name` as well."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for top in SCANNED
        for path in sorted((ROOT / top).rglob("*.py"))
        if ".venv" not in path.parts
    }


def test_nothing_imports_the_handlers():
    offenders = [
        f"{module} imports {imported}"
        for module, path in project_modules().items()
        for imported in sorted(imports_of(path))
        if imported == "handlers" or imported.startswith("handlers.")
    ]
    assert offenders == []


def test_infra_imports_point_down_its_tiers():
    offenders = []
    for module, path in project_modules().items():
        own = tier(module)
        if own is None:
            continue
        for imported in sorted(imports_of(path)):
            theirs = tier(imported)
            if theirs is not None and theirs > own:
                offenders.append(f"{module} (tier {own}) imports {imported} (tier {theirs})")
    assert offenders == []


def test_the_adapters_never_import_the_local_tooling():
    adapters = [m for m in project_modules() if tier(m) == 0]
    assert {"infra.dynamo", "infra.sqs", "infra.timers", "infra.eventbridge"} <= set(adapters)
    for module in adapters:
        assert not any(
            imported.startswith("infra.local") for imported in imports_of(project_modules()[module])
        ), module


def test_the_pure_layers_import_neither_infra_nor_handlers():
    for module, path in project_modules().items():
        if module.split(".")[0] in ("sdk", "engine"):
            assert not any(
                imported.split(".")[0] in ("infra", "handlers") for imported in imports_of(path)
            ), module


def test_each_handler_module_is_an_entry_point_only():
    for path in sorted((ROOT / "handlers").glob("*.py")):
        tree = ast.parse(path.read_text())
        code = [node for node in tree.body if not isinstance(node, ast.Expr)]  # docstrings
        if path.name == "__init__.py":
            assert code == [], "handlers/__init__.py holds only its docstring"
            continue
        imports = [node for node in code if isinstance(node, ast.ImportFrom)]
        assert [node.module for node in imports] == ["infra.lambda_functions"], path.name
        assert [alias.asname for alias in imports[0].names] == ["handler"], path.name
        assert len(code) <= 2, f"{path.name}: an entry point names a function, nothing more"


def test_the_tier_test_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "def f():\n    from handlers import engine\n    from infra.local import LocalRuntime\n"
    )
    assert {"handlers", "handlers.engine", "infra.local", "infra.local.LocalRuntime"} <= imports_of(
        bad
    )
    assert tier("infra.local.LocalRuntime") == 3 > tier("infra.sqs") == 0
