"""Executors: where a notebook step's code runs (a local worker or a Kubernetes pod)."""
