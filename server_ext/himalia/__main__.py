"""`python -m himalia` is the `himalia` command."""

from .cli import main

main()
