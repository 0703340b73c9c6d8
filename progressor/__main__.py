"""`python -m progressor`: the same command line as the `progressor` script."""

from progressor.cli.commands import main

main()
