"""`python -m himalia` is the `himalia` command."""

from himalia.cli import main

main()
