"""The `progressor` command line: commands parse their arguments and call the library.

`commands` holds the group and the program and log commands, `store` the store's, `batch`
recompute and synth, `common` what they share (exit codes, options, the engine).
"""

from progressor.cli.commands import main

__all__ = ["main"]
