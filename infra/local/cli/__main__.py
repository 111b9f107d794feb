"""`python -m infra.local.cli`: the `stepline` command without the console script."""

from infra.local.cli import main

main()
