"""Retention: finished runs keep their artifacts and logs within bounds, and snapshots nobody
references are purged.

A finished run keeps its executed notebooks, HTML reports and log while it is one of its
scenario's last ``keep_runs`` runs or younger than ``keep_days``; past both, they are purged on a
schedule (the scheduler's thread, every ``interval_seconds``) or by ``himalia retention purge``.
A scenario's own ``retention`` overrides the instance's, field by field. What stays: the run's
record (parameters, variables, steps and their outputs, its reproducibility record), the metrics
and check results it recorded, and the audit trail, which retention never touches. Pinned runs
and runs still queued or running are never purged.

Notebook snapshots, project-file trees and their blobs are content-addressed and shared; one is
purged once no scenario and no run that still has its artifacts references it, and it is older
than ``snapshot_grace_seconds`` (a scenario being saved references its snapshots a moment after
storing them). A purged run can no longer be re-run: what it ran may be gone.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from traitlets import Float, Int
from traitlets.config import LoggingConfigurable

from himalia.core.errors import NotFound
from himalia.core.permissions import GlobalPermission, ProjectPermission
from himalia.identity.caller import Caller
from himalia.identity.projects import require_project, require_run_or_write
from himalia.identity.service import AuditRecorder, Service
from himalia.scenarios.service import find_scenario
from himalia.store.db import Database
from himalia.store.orm import (
    FileTree,
    NotebookSnapshot,
    Project,
    ProjectFileBlob,
    RunArtifact,
    RunLogChunk,
    Scenario,
    ScenarioRun,
    utcnow,
)
from himalia.wire.scenarios import FINISHED_STATES, ProjectStorage, PurgeReport

#: The most runs one pass purges (the next pass goes on).
PURGE_BATCH = 1000


class Retention(LoggingConfigurable):
    """The instance's retention of run artifacts and logs (``c.Retention.keep_runs = 50``)."""

    keep_runs = Int(
        0, min=0, config=True, help="Each scenario's last runs that keep their artifacts and logs (0: no count limit)."
    )
    keep_days = Float(
        0.0, min=0.0, config=True, help="Days a finished run keeps its artifacts and logs (0: no age limit)."
    )
    interval_seconds = Float(3600.0, min=1.0, config=True, help="How often retention purges, in seconds.")
    snapshot_grace_seconds = Float(
        86400.0,
        min=0.0,
        config=True,
        help="How old an unreferenced notebook snapshot or file tree must be before it is purged.",
    )


@dataclass
class _Policy:
    keep_runs: int | None
    keep_days: float | None

    def keeps(self, newer_runs: int, ended_at: datetime | None, now: datetime) -> bool:
        """Whether a run with ``newer_runs`` runs of its scenario after it keeps its artifacts."""
        if self.keep_runs is None and self.keep_days is None:
            return True
        if self.keep_runs is not None and newer_runs < self.keep_runs:
            return True
        young = ended_at is None or now - ended_at < timedelta(days=self.keep_days or 0)
        return self.keep_days is not None and young


@dataclass
class _Purge:
    runs: list[int] = field(default_factory=list)
    projects: set[int] = field(default_factory=set)


class RetentionService(Service):
    def __init__(self, db: Database, audit: AuditRecorder, log: Any, settings: Retention) -> None:
        super().__init__(db, audit, log)
        self.settings = settings

    def policy(self, definition: dict[str, Any]) -> _Policy:
        """The scenario's retention, each unset field the instance's (0 there: no limit)."""
        own = definition.get("retention") or {}
        keep_runs = own.get("keep_runs") or self.settings.keep_runs or None
        keep_days = own.get("keep_days") or self.settings.keep_days or None
        return _Policy(keep_runs, keep_days)

    # -- purging --------------------------------------------------------------------------------

    def _expired(self, session: Session, now: datetime) -> _Purge:
        """The finished, unpinned runs past their scenario's retention, oldest first: one read of
        the scenarios' policies and, if any has one, one of the runs."""
        policies = {
            scenario_id: (project_id, policy)
            for scenario_id, project_id, definition in session.execute(
                select(Scenario.id, Scenario.project_id, Scenario.definition)
            )
            if (policy := self.policy(definition)).keep_runs is not None or policy.keep_days is not None
        }
        found: _Purge = _Purge()
        if not policies:
            return found
        newer, last_scenario = 0, None
        runs = session.execute(
            select(
                ScenarioRun.scenario_id,
                ScenarioRun.id,
                ScenarioRun.state,
                ScenarioRun.ended_at,
                ScenarioRun.pinned,
                ScenarioRun.purged_at,
            ).order_by(ScenarioRun.scenario_id, ScenarioRun.id.desc())
        )
        for scenario_id, run_id, state, ended_at, pinned, purged_at in runs:
            newer = 0 if scenario_id != last_scenario else newer + 1  # runs of the scenario after this one
            last_scenario = scenario_id
            if scenario_id not in policies or purged_at is not None or pinned or state not in FINISHED_STATES:
                continue
            project_id, policy = policies[scenario_id]
            if not policy.keeps(newer, ended_at, now):
                found.runs.append(run_id)
                found.projects.add(project_id)
                if len(found.runs) >= PURGE_BATCH:
                    break
        found.runs.sort()
        return found

    def purge(self, caller: Caller, *, dry_run: bool = False) -> PurgeReport:
        """Purge now what retention no longer keeps (administrators; ``dry_run``: only say what)."""
        caller.require(GlobalPermission.ADMIN)
        return self.purge_expired(caller, dry_run=dry_run)

    def purge_expired(self, actor: Caller, *, dry_run: bool = False, now: datetime | None = None) -> PurgeReport:
        """The purge itself, as ``actor`` (the scheduler's pass is the system's)."""
        now = now or utcnow()
        with self.db.write() as session:
            expired = self._expired(session, now)
            artifact_bytes = _sum(session, func.length(RunArtifact.content), RunArtifact.run_id, expired.runs)
            log_bytes = _sum(session, func.length(RunLogChunk.text), RunLogChunk.run_id, expired.runs)
            if not dry_run and expired.runs:
                session.execute(delete(RunArtifact).where(RunArtifact.run_id.in_(expired.runs)))
                session.execute(delete(RunLogChunk).where(RunLogChunk.run_id.in_(expired.runs)))
                session.execute(update(ScenarioRun).where(ScenarioRun.id.in_(expired.runs)).values(purged_at=now))
                session.flush()
            snapshots, trees, blobs = self._unreferenced(
                session, now - timedelta(seconds=self.settings.snapshot_grace_seconds)
            )
            freed = _sum(session, func.length(NotebookSnapshot.content), NotebookSnapshot.digest, snapshots) + _sum(
                session, func.length(ProjectFileBlob.content), ProjectFileBlob.digest, blobs
            )
            if not dry_run:
                for model, key, digests in (
                    (NotebookSnapshot, NotebookSnapshot.digest, snapshots),
                    (FileTree, FileTree.digest, trees),
                    (ProjectFileBlob, ProjectFileBlob.digest, blobs),
                ):
                    for chunk in _chunks(digests):
                        session.execute(delete(model).where(key.in_(chunk)))
            report = PurgeReport(
                dry_run=dry_run,
                runs=len(expired.runs),
                artifact_bytes=artifact_bytes,
                log_bytes=log_bytes,
                snapshots=len(snapshots),
                file_trees=len(trees),
                file_blobs=len(blobs),
                snapshot_bytes=freed,
            )
            if not dry_run and (expired.runs or snapshots or trees or blobs):
                keys = sorted(session.scalars(select(Project.key).where(Project.id.in_(expired.projects))))
                details = {**report.model_dump(exclude={"dry_run"}), "projects": keys, "run_ids": expired.runs[:100]}
                self.audit.record(session, actor, "retention.purge", "instance", "retention", details=details)
        return report

    @staticmethod
    def _unreferenced(session: Session, older_than: datetime) -> tuple[list[str], list[str], list[str]]:
        """Snapshots, trees and blobs that no scenario and no unpurged run references."""
        kept_runs = ScenarioRun.purged_at.is_(None)
        notebooks: set[str] = set()
        for mapping in [
            *session.scalars(select(Scenario.notebooks)),
            *session.scalars(select(ScenarioRun.notebooks).where(kept_runs)),
        ]:
            notebooks.update((mapping or {}).values())
        trees = set(session.scalars(select(Scenario.file_tree).where(Scenario.file_tree.is_not(None))))
        trees.update(
            session.scalars(select(ScenarioRun.file_tree).where(kept_runs, ScenarioRun.file_tree.is_not(None)))
        )
        stale_snapshots = [
            digest
            for digest in session.scalars(
                select(NotebookSnapshot.digest).where(NotebookSnapshot.created_at < older_than)
            )
            if digest not in notebooks
        ]
        stale_trees = [
            digest
            for digest in session.scalars(select(FileTree.digest).where(FileTree.created_at < older_than))
            if digest not in trees
        ]
        used_blobs = {
            blob
            for entries in session.scalars(select(FileTree.entries).where(FileTree.digest.not_in(stale_trees)))
            for _path, blob, _size in entries
        }
        stale_blobs = [
            digest
            for digest in session.scalars(select(ProjectFileBlob.digest).where(ProjectFileBlob.created_at < older_than))
            if digest not in used_blobs
        ]
        return stale_snapshots, stale_trees, stale_blobs

    # -- pinning and space ----------------------------------------------------------------------

    def pin(self, caller: Caller, key: str, scenario_id: str, run_id: int, pinned: bool) -> None:
        """Keep a run whatever retention says (or let retention judge it again)."""
        with self.db.write() as session:
            project, permissions = require_project(session, caller, key, ProjectPermission.READ_DASHBOARDS)
            require_run_or_write(session, caller, project, permissions)
            scenario = find_scenario(session, project, scenario_id)
            run = session.scalar(
                select(ScenarioRun).where(ScenarioRun.id == run_id, ScenarioRun.scenario_id == scenario.id)
            )
            if run is None:
                raise NotFound(f"There is no run #{run_id} of {scenario_id}.")
            run.pinned = pinned
            self.audit.record(
                session,
                caller,
                "run.pin" if pinned else "run.unpin",
                "scenario",
                scenario.slug,
                project_key=key,
                details={"run": run_id},
            )

    def storage(self, caller: Caller, key: str) -> ProjectStorage:
        """The space a project's runs and snapshots take in the store."""
        with self.db.read() as session:
            project, _ = require_project(session, caller, key, ProjectPermission.READ_DASHBOARDS)
            runs = select(ScenarioRun.id).where(ScenarioRun.project_id == project.id)
            counts = session.execute(
                select(
                    func.count(),
                    func.count().filter(ScenarioRun.pinned.is_(True)),
                    func.count().filter(ScenarioRun.purged_at.is_not(None)),
                ).where(ScenarioRun.project_id == project.id)
            ).one()
            artifacts = session.scalar(
                select(func.coalesce(func.sum(func.length(RunArtifact.content)), 0)).where(RunArtifact.run_id.in_(runs))
            )
            logs = session.scalar(
                select(func.coalesce(func.sum(func.length(RunLogChunk.text)), 0)).where(RunLogChunk.run_id.in_(runs))
            )
            kept = ScenarioRun.purged_at.is_(None)
            notebooks: set[str] = set()
            for mapping in [
                *session.scalars(select(Scenario.notebooks).where(Scenario.project_id == project.id)),
                *session.scalars(select(ScenarioRun.notebooks).where(ScenarioRun.project_id == project.id, kept)),
            ]:
                notebooks.update((mapping or {}).values())
            trees = set(session.scalars(select(Scenario.file_tree).where(Scenario.project_id == project.id)))
            trees.update(
                session.scalars(select(ScenarioRun.file_tree).where(ScenarioRun.project_id == project.id, kept))
            )
            blobs = {
                (blob, size)
                for entries in session.scalars(select(FileTree.entries).where(FileTree.digest.in_(trees - {None})))
                for _path, blob, size in entries
            }
            return ProjectStorage(
                project=key,
                runs=counts[0],
                pinned_runs=counts[1],
                purged_runs=counts[2],
                artifact_bytes=int(artifacts or 0),
                log_bytes=int(logs or 0),
                snapshot_bytes=_sum(session, func.length(NotebookSnapshot.content), NotebookSnapshot.digest, notebooks),
                file_bytes=sum(size for _blob, size in blobs),
            )


def _chunks(values: list[Any], size: int = 500) -> Iterable[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _sum(session: Session, measure: Any, key: Any, values: Iterable[Any]) -> int:
    """The sum of ``measure`` over the rows whose ``key`` is among ``values``, in chunks of 500."""
    total = 0
    for chunk in _chunks(sorted(values)):
        total += int(session.scalar(select(func.coalesce(func.sum(measure), 0)).where(key.in_(chunk))) or 0)
    return total


class RetentionWatcher:
    """The scheduler's thread purging every ``interval_seconds`` (a ``scheduler.Watcher``)."""

    def __init__(self, service: RetentionService) -> None:
        self.service = service
        self._next: datetime | None = None

    def watch(self, now: datetime) -> datetime | None:
        if self._next is None or now >= self._next:
            self._next = now + timedelta(seconds=self.service.settings.interval_seconds)
            report = self.service.purge_expired(Caller.system("retention"), now=now)
            if report.runs or report.snapshots or report.file_blobs:
                self.service.log.info(
                    "Retention purged the artifacts and logs of %d runs (%d bytes) and %d snapshots",
                    report.runs,
                    report.artifact_bytes + report.log_bytes,
                    report.snapshots,
                )
        return self._next

    def close(self) -> None:
        """Nothing is under way between two passes."""
