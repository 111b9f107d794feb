"""The `stepline` command line (placeholder until the developer-experience work lands)."""

from __future__ import annotations

import sys


def main() -> None:
    print("stepline: durable workflows on AWS Lambda. Commands arrive with the CLI issue.")
    sys.exit(0)
