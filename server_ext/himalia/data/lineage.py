"""Which datasets a scenario run read: the inputs of its reproducibility record.

A run reads a dataset when one of its steps computes on it (metrics, checks: the engine acts for
the run) and when its kernels open it with the run's token (``himalia.dataset(...)``: its
description, its rows through the platform). Each input keeps the dataset's schema digest (its
columns and their types, as last read) and what the read counted, once per dataset, schema and
reader: a notebook that opens its input ten times lists it once, a schema that changed mid-run twice.
"""

import hashlib
import json
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from himalia.identity.caller import Caller
from himalia.store.orm import Dataset, ScenarioRun

#: The most inputs a run keeps (a run that reads more keeps its first ones).
MAX_INPUTS = 200


def schema_digest(columns: list[dict[str, str]] | None) -> str:
    """SHA-256 of the columns' names and types, in order."""
    return hashlib.sha256(json.dumps(columns or [], sort_keys=True).encode()).hexdigest()


def reading_run(session: Session, caller: Caller) -> int | None:
    """The running scenario run ``caller`` acts for: the engine's steps, or kernels holding its token."""
    if caller.run_id is not None:
        return caller.run_id
    if caller.token_id is None:
        return None
    found: int | None = session.scalar(
        select(ScenarioRun.id).where(ScenarioRun.token_id == caller.token_id, ScenarioRun.state == "running")
    )
    return found


def record_input(session: Session, caller: Caller, dataset: Dataset, rows: int | None = None) -> None:
    """Keep on the run ``caller`` acts for, if any, that it read ``dataset`` (``rows``: as counted)."""
    run_id = reading_run(session, caller)
    if run_id is None:
        return
    run = session.scalar(select(ScenarioRun).where(ScenarioRun.id == run_id).with_for_update())
    if run is None or run.project_id != dataset.project_id:
        return
    read_by: Literal["step", "kernel"] = "step" if caller.run_id is not None else "kernel"
    entry: dict[str, Any] = {
        "dataset": dataset.name,
        "schema_digest": schema_digest(dataset.columns),
        "read_by": read_by,
        "rows": rows,
    }
    inputs = [dict(kept) for kept in run.inputs or []]
    identity = ("dataset", "schema_digest", "read_by")
    same = next((kept for kept in inputs if all(kept.get(k) == entry[k] for k in identity)), None)
    if same is not None:
        if rows is None or same.get("rows") == rows:
            return
        same["rows"] = rows
    elif len(inputs) < MAX_INPUTS:
        inputs.append(entry)
    else:
        return
    run.inputs = inputs
