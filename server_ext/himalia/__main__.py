"""`python -m himalia` is the `himalia` command."""

from himalia.cli.main import main

main()
