"""`python -m mnlang.cli`: the same as `mnc`."""

from mnlang.cli import main

main()
