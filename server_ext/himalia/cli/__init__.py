"""The ``himalia`` command."""
