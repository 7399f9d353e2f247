"""Connections, datasets, metrics and checks: the data a project reads and judges."""
