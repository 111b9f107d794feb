"""Every snippet of README.md runs as written.

The code blocks are read out of README.md itself, not copied here. Python blocks run in a
subprocess; shell commands run through bash, against a real `stepline dev` on the port
the README names; the boto3 publish snippet runs with exactly the environment the README
tells the user to export (and no other AWS configuration: HOME is an empty directory).
The one liberty taken: `.venv/bin/` means the virtualenv these tests run in.

What is not run is listed in NOT_RUN with the reason, and a test checks that every
command of every block is either run here or listed there.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_cli import ROOT, Process, cli_env, eventually, listening

README = ROOT / "README.md"
BIN = Path(sys.executable).parent

# README commands not run here, by how they start, and why. Keep this short.
NOT_RUN = {
    # The two commands on a fresh machine: the tests already run inside the virtualenv
    # they make, and .ci/run makes it with this same command. The rest of the first line
    # (the demo) is run; test_the_extras_the_readme_installs_exist checks the extras.
    "python3 -m venv .venv": "creates the virtualenv these tests run in (.ci/run does)",
    ".venv/bin/pip install -q -e '.[": "installs the project (a minute); .ci/run does",
    ".venv/bin/python -m pytest": "the test suite this file is part of",
    # Deploying needs an AWS account: tests/test_deploy.py creates template.yaml as a
    # stack on moto and sends the README's `aws events put-events` entries to it verbatim.
    "sam build": "needs the SAM CLI and Python 3.12 for the functions; see test_deploy.py",
    "sam deploy --guided": "deploys to a real AWS account, interactively",
    "aws cloudformation describe-stacks": "reads a deployed stack (real AWS)",
    "aws events put-events": "real AWS; test_deploy.py sends these entries to a moto stack",
    "aws lambda get-function-configuration": "reads a deployed function (real AWS)",
    "export AWS_REGION=us-east-1 STEPLINE_APP=workflows:app": "a deployed stack's settings",
    "stepline runs list --json": "against a deployed stack (real AWS), after the line above",
    # tests/test_check_cli.py exports a run and checks the table's runs in process, against
    # a LocalRuntime's table; test_readme_evolution.py runs the --history command as written.
    ".venv/bin/stepline runs export <run-id>": "test_check_cli.py exports runs in process",
    "stepline check --app workflows:app": "a deployed stack's table (real AWS)",
    # Benchmarks take minutes; tests/test_bench.py runs the same code at tiny sizes.
    ".venv/bin/python -m bench": "minutes of benchmarks; test_bench.py runs them tiny",
}

# The commands run here, by how they start.
RUN = (
    ".venv/bin/python -m examples.demo",
    ".venv/bin/stepline dev --app examples:app",
    ".venv/bin/stepline send user/signup",
    ".venv/bin/stepline runs list --endpoint",
    ".venv/bin/stepline runs show <run-id>",
    "export AWS_ENDPOINT_URL=",
    ".venv/bin/stepline check --app examples:app --history tests/golden",  # test_readme_evolution.py
)

# The Python blocks, each recognised by a line of its own; all are run here.
PYTHON_BLOCKS = {
    "workflow": 'app = App("shop")',
    "local": "with LocalRuntime(app) as rt:",
    "publish": 'boto3.client("events").put_events(',
    "flow": 'crm = App("crm")',
    # Run by tests/test_readme_evolution.py.
    "cron": 'trigger=[Cron("0 9 * * MON", tz="Europe/Paris"), "digest/requested"]',
    "patched": 'if new and ctx.patched("sms-welcome"):',
}


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int


def blocks() -> list[Block]:
    text = README.read_text()
    return [
        Block(match.group(1), match.group(2), text.count("\n", 0, match.start()) + 1)
        for match in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    ]


def commands(script: str) -> list[str]:
    """The commands of a shell block, one per `&&` part, without comments."""
    found: list[str] = []
    current, quote, comment = "", "", False
    for index, char in enumerate(script):
        if comment:
            if char == "\n":
                comment = False
                current += char
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or script[index - 1].isspace()):
            comment = True
            continue
        current += char
    for line in re.split(r"\n(?=\S)|&&", current):
        line = " ".join(line.split())
        if line:
            found.append(line)
    return found


def python_block(name: str) -> str:
    [block] = [b.text for b in blocks() if b.language == "python" and PYTHON_BLOCKS[name] in b.text]
    return block


def shell_command(start: str) -> str:
    [command] = [
        c for b in blocks() if b.language == "bash" for c in commands(b.text) if c.startswith(start)
    ]
    return command


def as_run_here(command: str) -> str:
    """The command with `.venv/bin/` meaning the virtualenv of these tests."""
    return command.replace(".venv/bin/", f"{BIN}/")


def bash(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", as_run_here(command)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- the inventory ------------------------------------------------------------------------


def test_every_snippet_is_run_here_or_listed_with_a_reason():
    found = blocks()
    assert {b.language for b in found} == {"python", "bash"}, "a block of a new language"
    for block in found:
        if block.language == "python":
            names = [name for name, marker in PYTHON_BLOCKS.items() if marker in block.text]
            assert len(names) == 1, f"README.md:{block.line}: a Python block no test runs"
            continue
        for command in commands(block.text):
            runs = [start for start in RUN if command.startswith(start)]
            skips = [start for start in NOT_RUN if command.startswith(start)]
            assert len(runs) + len(skips) == 1, (
                f"README.md:{block.line}: {command!r} is neither run by tests/test_readme.py "
                "nor listed in its NOT_RUN with a reason"
            )
    every = [c for b in found if b.language == "bash" for c in commands(b.text)]
    for start in (*RUN, *NOT_RUN):
        assert any(c.startswith(start) for c in every), f"{start!r} is no longer in README.md"


def test_the_extras_the_readme_installs_exist():
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    )
    named = {
        name
        for b in blocks()
        if b.language == "bash"
        for c in commands(b.text)
        for group in re.findall(r"-e '\.\[([\w,]+)\]'", c)
        for name in group.split(",")
    }
    assert named and named <= extras


# -- the snippets, as written ---------------------------------------------------------------


def test_the_flow_control_example_debounces_a_burst_into_one_run():
    result = subprocess.run(
        [sys.executable, "-c", python_block("flow")],
        cwd=ROOT,
        env=cli_env(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    skipped, final = result.stdout.splitlines()
    assert skipped.startswith("started nothing: sync-contact: debounced into run sync-contact-")
    assert final == "COMPLETED {'synced': 3}"


def test_the_quick_start_defines_a_workflow_and_runs_it_locally_in_virtual_time():
    script = python_block("workflow") + "\n" + python_block("local")
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=cli_env(ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    status_line, *audit = result.stdout.splitlines()
    assert status_line == "COMPLETED {'activated': False}"
    assert [line.split()[:3] for line in audit] == [
        ["send-welcome", "run", "COMPLETED"],
        ["wait-24h", "sleep", "COMPLETED"],
        ["check-activation", "run", "COMPLETED"],
        ["send-reminder", "run", "COMPLETED"],
        ["wait-7d", "sleep", "COMPLETED"],
        ["check-week", "run", "COMPLETED"],
        ["flag-inactive", "run", "COMPLETED"],
    ]


def test_the_demo_command_runs():
    result = bash(shell_command(".venv/bin/python -m examples.demo"), cli_env(ROOT))
    assert result.returncode == 0, result.stderr
    assert "Summary" in result.stdout and "9 runs (1 cancelled, 8 completed" in result.stdout


def publish_from_an_application(exports: str, directory: Path) -> None:
    """The README's boto3 snippet, in a process with only PATH, an empty HOME and `exports`."""
    exported = dict(pair.split("=", 1) for pair in shlex.split(exports)[1:])
    published = subprocess.run(
        [sys.executable, "-c", python_block("publish")],
        cwd=directory,
        env={"PATH": cli_env(directory)["PATH"], "HOME": str(directory), **exported},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert published.returncode == 0, f"with {exports}:\n{published.stderr}"


def test_the_dev_server_snippets_run_as_written(tmp_path):
    dev = shell_command(".venv/bin/stepline dev --app examples:app")
    send = shell_command(".venv/bin/stepline send user/signup")
    listing = shell_command(".venv/bin/stepline runs list --endpoint")
    show = shell_command(".venv/bin/stepline runs show <run-id>")
    endpoint = re.search(r"--endpoint (\S+)", send)
    assert endpoint is not None
    port = int(endpoint.group(1).rsplit(":", 1)[1])
    assert port == 4566 and "--port" not in dev  # the README relies on the default port

    # The port the README names; wait for another test run to let go of it, if one holds it.
    try:
        eventually(lambda: not listening(port), timeout=45)
    except AssertionError:
        pytest.fail(f"port {port}, which the README's dev-server snippet uses, stays taken")

    env = cli_env(tmp_path)
    server = Process(["bash", "-c", "exec " + as_run_here(dev)], env)
    try:
        server.wait_for("Press Ctrl-C to stop", timeout=60)

        # An application publishes with plain boto3, set up as `stepline dev` says ...
        printed = re.search(r"^\s*(export AWS_ENDPOINT_URL=.*)$", server.output, re.MULTILINE)
        assert printed is not None, server.output
        publish_from_an_application(printed.group(1), tmp_path)
        # ... which is what the README says.
        export = shell_command("export AWS_ENDPOINT_URL=")
        assert printed.group(1) == export
        publish_from_an_application(export, tmp_path)

        sent = bash(send, env)
        assert sent.returncode == 0, sent.stderr
        [run_id] = re.findall(r"started run (user-onboarding-\S+)", sent.stdout)

        # The id the user copies from the list (printed whole), pasted into `runs show`.
        def listed_runs() -> list[str]:
            listed = bash(listing, env)
            assert listed.returncode == 0, listed.stderr
            return re.findall(r"user-onboarding-[0-9a-f]+", listed.stdout)

        # The two runs published from "the application", and the one `send` started.
        copied = eventually(lambda: len(found := listed_runs()) == 3 and found)
        assert run_id in copied
        shown = bash(show.replace("<run-id>", run_id), env)
        assert shown.returncode == 0, shown.stderr
        assert "send-welcome" in shown.stdout and run_id in shown.stdout
        assert server.interrupt() == 0
    finally:
        server.close()
