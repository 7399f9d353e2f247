"""Scenarios and their runs: definitions, snapshots, the run engine, the scheduler, reporting."""
