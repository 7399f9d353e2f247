"""Two runs of one scenario side by side: what they were given, what they ran, what they recorded.

Everything compared is what the runs kept: their parameters and variables, the notebook
snapshots and the project-file tree they ran (content-addressed, so equal digests are equal
content), their steps, and the metrics and check outcomes recorded under their ids. Notebooks
that differ are compared cell by cell: the cells' sources are aligned (``difflib``'s matching of
the two sequences) and each cell added, removed or changed is shown as a unified diff.
"""

import difflib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from himalia.core.errors import NotFound
from himalia.store.orm import Check, CheckResult, Dataset, FileTree, MetricValue, NotebookSnapshot, ScenarioRun
from himalia.wire.scenarios import (
    ComparedCell,
    ComparedEnvironment,
    ComparedFiles,
    ComparedNotebook,
    ComparedRun,
    ComparedStep,
    ComparedValue,
    NotebookDiff,
    RunComparison,
)

#: The most cells of a notebook compared one by one (beyond, the notebook is only said to differ).
MAX_COMPARED_CELLS = 2000


def _seconds(started: datetime | None, ended: datetime | None) -> float | None:
    return (ended - started).total_seconds() if started and ended else None


def _run(run: ScenarioRun) -> ComparedRun:
    return ComparedRun(
        id=run.id,
        state=run.state,
        trigger=run.trigger,
        requested_by=run.requested_by,
        run_as=run.run_as.login,
        message=run.message,
        started_at=run.started_at,
        ended_at=run.ended_at,
        seconds=_seconds(run.started_at, run.ended_at),
    )


def _values(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[ComparedValue]:
    return [
        ComparedValue(name=name, a=a.get(name), b=b.get(name), same=name in a and name in b and a[name] == b[name])
        for name in sorted({*a, *b})
    ]


def _sources(content: str | None) -> list[str]:
    if content is None:
        return []
    cells = json.loads(content).get("cells", [])
    return [
        "".join(cell.get("source", "")) if isinstance(cell.get("source"), list) else cell.get("source", "")
        for cell in cells
    ]


def _diff(before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), "run a", "run b", lineterm="\n"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def compare_cells(before: list[str], after: list[str]) -> list[ComparedCell]:
    """The cells added, removed and changed from ``before`` to ``after`` (lists of cell sources)."""
    if len(before) > MAX_COMPARED_CELLS or len(after) > MAX_COMPARED_CELLS:
        return []
    cells: list[ComparedCell] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, a_start, a_end, b_start, b_end in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(a_end - a_start, b_end - b_start) if tag == "replace" else 0
        for offset in range(paired):
            i, j = a_start + offset, b_start + offset
            cells.append(ComparedCell(a=i, b=j, change="changed", diff=_diff(before[i], after[j])))
        for i in range(a_start + paired, a_end):
            cells.append(ComparedCell(a=i, b=None, change="removed", diff=_diff(before[i], "")))
        for j in range(b_start + paired, b_end):
            cells.append(ComparedCell(a=None, b=j, change="added", diff=_diff("", after[j])))
    return cells


def _notebooks(session: Session, a: Mapping[str, str], b: Mapping[str, str]) -> list[ComparedNotebook]:
    differing = {
        digest for path in {*a, *b} if a.get(path) != b.get(path) for digest in (a.get(path), b.get(path)) if digest
    }
    found = session.execute(
        select(NotebookSnapshot.digest, NotebookSnapshot.content).where(NotebookSnapshot.digest.in_(differing))
    )
    contents: dict[str | None, str] = {digest: content for digest, content in found}
    compared = []
    for path in sorted({*a, *b}):
        before, after = a.get(path), b.get(path)
        cells = [] if before == after else compare_cells(_sources(contents.get(before)), _sources(contents.get(after)))
        compared.append(ComparedNotebook(path=path, a=before, b=after, same=before == after, cells=cells))
    return compared


def notebook_diff(session: Session, path: str, a: Mapping[str, str], b: Mapping[str, str]) -> NotebookDiff:
    """nbdime's diff of the notebook ``path`` from run a's snapshot to run b's (``NotFound``: neither ran it)."""
    import nbdime
    import nbformat

    if path not in a and path not in b:
        raise NotFound(f"Neither run ran a notebook '{path}'.")

    def notebook(digest: str | None) -> Any:
        content = session.get(NotebookSnapshot, digest).content if digest else None  # type: ignore[union-attr]
        return nbformat.reads(content, as_version=4) if content else nbformat.v4.new_notebook()

    base = notebook(a.get(path))
    return NotebookDiff(path=path, base=base, diff=nbdime.diff_notebooks(base, notebook(b.get(path))))


def _tree(session: Session, digest: str | None) -> dict[str, str]:
    tree = session.get(FileTree, digest) if digest else None
    return {path: sha for path, sha, _size in tree.entries} if tree else {}


def _files(session: Session, a: str | None, b: str | None) -> ComparedFiles:
    before, after = _tree(session, a), _tree(session, b)
    return ComparedFiles(
        a=a,
        b=b,
        added=sorted(set(after) - set(before)),
        removed=sorted(set(before) - set(after)),
        changed=sorted(path for path in set(before) & set(after) if before[path] != after[path]),
        unchanged=sum(1 for path in set(before) & set(after) if before[path] == after[path]),
    )


def _steps(a: ScenarioRun, b: ScenarioRun) -> list[ComparedStep]:
    first = {step.position: step for step in a.steps}
    second = {step.position: step for step in b.steps}
    compared = []
    for position in sorted({*first, *second}):
        one, two = first.get(position), second.get(position)
        named = one or two
        assert named is not None
        compared.append(
            ComparedStep(
                position=position,
                name=named.name,
                a=one.state if one else None,
                b=two.state if two else None,
                seconds_a=_seconds(one.started_at, one.ended_at) if one else None,
                seconds_b=_seconds(two.started_at, two.ended_at) if two else None,
                message_a=one.message if one else "",
                message_b=two.message if two else "",
            )
        )
    return compared


#: The settings of a reproducibility record compared one by one (its packages are compared apart).
ENVIRONMENT_SETTINGS = ("kernel", "python", "executable", "executor", "image", "tier", "digest")


def _environments(a: ScenarioRun, b: ScenarioRun) -> list[ComparedEnvironment]:
    first = {step.position: step for step in a.steps}
    second = {step.position: step for step in b.steps}
    compared = []
    for position in sorted({*first, *second}):
        one = (first[position].outputs or {}).get("environment") if position in first else None
        two = (second[position].outputs or {}).get("environment") if position in second else None
        if not one and not two:
            continue
        one, two = one or {}, two or {}
        before, after = dict(one.get("packages") or {}), dict(two.get("packages") or {})
        settings = {name: one[name] for name in ENVIRONMENT_SETTINGS if name in one}
        compared.append(
            ComparedEnvironment(
                position=position,
                step=(first.get(position) or second[position]).name,
                settings=_values(settings, {name: two[name] for name in ENVIRONMENT_SETTINGS if name in two}),
                added=[f"{name}=={after[name]}" for name in sorted(set(after) - set(before))],
                removed=[f"{name}=={before[name]}" for name in sorted(set(before) - set(after))],
                changed=[
                    ComparedValue(name=name, a=before[name], b=after[name], same=False)
                    for name in sorted(set(before) & set(after))
                    if before[name] != after[name]
                ],
            )
        )
    return compared


def _inputs(a: ScenarioRun, b: ScenarioRun) -> list[ComparedValue]:
    def last(run: ScenarioRun) -> dict[str, dict[str, Any]]:
        return {
            entry["dataset"]: {"schema_digest": entry["schema_digest"], "rows": entry.get("rows")}
            for entry in run.inputs or []
        }

    return _values(last(a), last(b))


def _side_by_side(rows: Iterable[tuple[str | None, str, str, Any]], a: str, b: str) -> list[ComparedValue]:
    """The last value of each (dataset, name) per run, from rows oldest first."""
    last: dict[tuple[str | None, str], dict[str, Any]] = {}
    for dataset, name, run_id, value in rows:
        last.setdefault((dataset, name), {})[run_id] = value
    return [
        ComparedValue(
            name=name,
            dataset=dataset,
            a=values.get(a),
            b=values.get(b),
            same=a in values and b in values and values[a] == values[b],
        )
        for (dataset, name), values in sorted(last.items(), key=lambda item: (item[0][0] or "", item[0][1]))
    ]


def _metrics(session: Session, project_id: int, a: str, b: str) -> list[ComparedValue]:
    rows = session.execute(
        select(Dataset.name, MetricValue.metric, MetricValue.run_id, MetricValue.value)
        .outerjoin(Dataset, Dataset.id == MetricValue.dataset_id)
        .where(MetricValue.project_id == project_id, MetricValue.run_id.in_([a, b]))
        .order_by(MetricValue.id)
    ).all()
    return _side_by_side(((d, m, r or "", v) for d, m, r, v in rows), a, b)


def _checks(session: Session, project_id: int, a: str, b: str) -> list[ComparedValue]:
    rows = session.execute(
        select(Dataset.name, Check.name, CheckResult.run_id, CheckResult.outcome)
        .join(Check, Check.id == CheckResult.check_id)
        .join(Dataset, Dataset.id == Check.dataset_id)
        .where(Dataset.project_id == project_id, CheckResult.run_id.in_([a, b]))
        .order_by(CheckResult.id)
    ).all()
    return _side_by_side(((d, c, r or "", o) for d, c, r, o in rows), a, b)


def compare_runs(session: Session, project_key: str, a: ScenarioRun, b: ScenarioRun) -> RunComparison:
    """``a`` and ``b`` side by side (whoever may read a project's scenarios may read its dashboards)."""
    first, second = str(a.id), str(b.id)
    project_id = a.project_id
    return RunComparison(
        project=project_key,
        scenario=a.scenario.slug,
        a=_run(a),
        b=_run(b),
        parameters=_values(a.parameters, b.parameters),
        variables=_values(a.variables, b.variables),
        notebooks=_notebooks(session, a.notebooks, b.notebooks),
        files=_files(session, a.file_tree, b.file_tree),
        steps=_steps(a, b),
        environments=_environments(a, b),
        inputs=_inputs(a, b),
        metrics=_metrics(session, project_id, first, second),
        checks=_checks(session, project_id, first, second),
    )
