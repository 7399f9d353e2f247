"""Class 9: an attacker with write access to the database deletes the newest audit entries.

Before the fix, deleting the last rows and moving the chain-head row back to the new last entry
verified as intact. The attacker here is a database superuser (on PostgreSQL the append-only
triggers are dropped first) who does not hold the audit key; the variants combine how many
entries go, what becomes of the head row and what becomes of the head file outside the database
(for the variants that touch it, the attacker can also write the control plane's home).

Out of reach by design, so not tried: restoring old copies of both the head row and the head
file together with the truncated table is a full rollback of the database and the home, which
is what restoring both from backups does, and looks the same.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, delete, insert, literal, select, text, update
from sqlalchemy.exc import DBAPIError

import himalia.identity.audit
from himalia.controlplane import ControlPlane
from himalia.identity.audit import GENESIS
from himalia.identity.audit_head import ROW_LABEL, head_seal
from himalia.identity.caller import Caller
from himalia.store.orm import AuditChainHead, AuditEntry, UTCDateTime
from himalia.wire.identity import CreateProject

from ..conftest import AUDIT_KEY, SECRET_KEY
from .conftest import Ledger

ATTACK = "9 audit truncation"
OPERATOR = Caller.operator("attack-test")
APPEND_ONLY_TRIGGERS = ("audit_entries_no_update_delete", "audit_entries_no_truncate")
#: Projects created before the attacks, so that there is a tail to delete and old heads to replay.
GROWTH = 12


def _problems(plane: ControlPlane) -> list[str]:
    return plane.audit.verify(OPERATOR).problems


@contextmanager
def _superuser(plane: ControlPlane) -> Iterator[Connection]:
    """A transaction on the store with the append-only triggers out of the way, as a superuser's."""
    with plane.db.engine.begin() as connection:
        if plane.db.dialect == "postgresql":
            for trigger in APPEND_ONLY_TRIGGERS:
                connection.execute(text(f"DROP TRIGGER IF EXISTS {trigger} ON audit_entries"))
        yield connection


def _head_row(connection: Connection) -> dict[str, Any]:
    row = connection.execute(select(AuditChainHead.seq, AuditChainHead.hash, AuditChainHead.seal)).one()
    return dict(row._mapping)


def _set_head_row(connection: Connection, **values: Any) -> None:
    connection.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(**values))


def _hash_at(connection: Connection, seq: int) -> str:
    if seq == 0:
        return GENESIS
    return str(connection.scalar(select(AuditEntry.hash).where(AuditEntry.seq == seq)))


@pytest.fixture
def history(plane: ControlPlane) -> dict[int, tuple[dict[str, Any], str]]:
    """The head row and the head file's text as they were after each of the last writes."""
    owner = plane.users.caller_for("admin")
    head_file = Path(plane.audit_head_file)
    seen: dict[int, tuple[dict[str, Any], str]] = {}
    for index in range(GROWTH + 1):
        if index:
            plane.projects.create_project(owner, CreateProject(key=f"GROWN_{index}", name="grown"))
        with plane.db.engine.connect() as connection:
            head = _head_row(connection)
        seen[head["seq"]] = (head, head_file.read_text())
    assert _problems(plane) == []
    return seen


HEAD_ROW_TREATMENTS = (
    "head row untouched",
    "head row moved back, its seal kept",
    "head row moved back, its seal removed",
    "head row moved back, sealed with a guessed key",
    "head row replayed from a backup taken at that entry",
)
HEAD_FILE_TREATMENTS = ("head file untouched", "head file restored from a backup", "head file removed")


def _truncate(
    plane: ControlPlane,
    history: dict[int, tuple[dict[str, Any], str]],
    keep: int,
    head_row: str,
    head_file: str,
) -> None:
    with _superuser(plane) as connection:
        connection.execute(delete(AuditEntry).where(AuditEntry.seq > keep))
        new_last = _hash_at(connection, keep)
        if head_row == "head row moved back, its seal kept":
            _set_head_row(connection, seq=keep, hash=new_last)
        elif head_row == "head row moved back, its seal removed":
            _set_head_row(connection, seq=keep, hash=new_last, seal=None)
        elif head_row == "head row moved back, sealed with a guessed key":
            _set_head_row(connection, seq=keep, hash=new_last, seal=head_seal(b"guessed", ROW_LABEL, keep, new_last))
        elif head_row == "head row replayed from a backup taken at that entry":
            _set_head_row(connection, **history[keep][0])
    path = Path(plane.audit_head_file)
    if head_file == "head file restored from a backup":
        path.write_text(history[keep][1])
    elif head_file == "head file removed":
        path.unlink()


@contextmanager
def _undone_afterwards(plane: ControlPlane) -> Iterator[None]:
    """Put every entry, the head row and the head file back, and check the chain is whole again."""
    path = Path(plane.audit_head_file)
    saved_file = path.read_text()
    with plane.db.engine.connect() as connection:
        saved_rows = [dict(r._mapping) for r in connection.execute(select(AuditEntry.__table__))]
        saved_head = _head_row(connection)
    yield
    with _superuser(plane) as connection:
        connection.execute(delete(AuditEntry))
        connection.execute(insert(AuditEntry), saved_rows)
        _set_head_row(connection, **saved_head)
    path.write_text(saved_file)
    assert _problems(plane) == []


def test_deleting_the_newest_entries_is_detected_however_the_head_is_moved_back(
    plane: ControlPlane, history: dict[int, tuple[dict[str, Any], str]], ledger: Ledger
) -> None:
    last = max(history)
    undetected = []
    for deleted in (1, 2, 3, 5, 10, GROWTH):
        for head_row in HEAD_ROW_TREATMENTS:
            for head_file in HEAD_FILE_TREATMENTS:
                both_from_backups = head_row.startswith("head row replayed") and head_file.endswith("from a backup")
                if both_from_backups:
                    continue  # a rollback of the database and the home together (see the module docstring)
                case = f"delete the last {deleted}; {head_row}; {head_file}"
                with _undone_afterwards(plane):
                    _truncate(plane, history, last - deleted, head_row, head_file)
                    problems = _problems(plane)
                if not ledger.tried(ATTACK, case, bool(problems)):
                    undetected.append(case)
    assert undetected == []


def test_each_problem_names_the_witness_that_disagrees(
    plane: ControlPlane, history: dict[int, tuple[dict[str, Any], str]], ledger: Ledger
) -> None:
    last = max(history)
    path = plane.audit_head_file
    with _undone_afterwards(plane):
        _truncate(
            plane, history, last - 3, "head row replayed from a backup taken at that entry", "head file untouched"
        )
        problems = _problems(plane)
    # The database agrees with itself; only the file outside it knows that three entries went.
    expected = [
        f"entry {last - 2}: missing (deleted), as are the entries up to {last}: "
        f"the head file {path} says the chain ended at entry {last}"
    ]
    assert ledger.tried(ATTACK, "head row replayed: only the head file disagrees", problems == expected)
    with _undone_afterwards(plane):
        _truncate(plane, history, last - 1, "head row moved back, its seal kept", "head file restored from a backup")
        problems = _problems(plane)
    # The file was put back in step with the table; the head row's seal gives the move away.
    assert ledger.tried(
        ATTACK,
        "head file restored from a backup with the table: the head row's seal disagrees",
        problems == ["the chain head row's seal does not match it (rewritten without the audit key)"],
    )


def test_deleting_every_entry_is_detected(
    plane: ControlPlane, history: dict[int, tuple[dict[str, Any], str]], ledger: Ledger
) -> None:
    undetected = []
    for seal in ("kept", "removed", "guessed"):
        for head_file in ("head file untouched", "head file removed"):
            case = f"delete every entry; head row reset to the genesis, its seal {seal}; {head_file}"
            with _undone_afterwards(plane):
                with _superuser(plane) as connection:
                    connection.execute(delete(AuditEntry))
                    values: dict[str, Any] = {"seq": 0, "hash": GENESIS}
                    if seal == "removed":
                        values["seal"] = None
                    elif seal == "guessed":
                        values["seal"] = head_seal(b"guessed", ROW_LABEL, 0, GENESIS)
                    _set_head_row(connection, **values)
                if head_file == "head file removed":
                    Path(plane.audit_head_file).unlink()
                problems = _problems(plane)
            if not ledger.tried(ATTACK, case, bool(problems)):
                undetected.append(case)
    assert undetected == []


def test_deleting_or_replacing_a_middle_entry_is_detected(plane: ControlPlane, ledger: Ledger) -> None:
    with plane.db.engine.connect() as connection:
        middle = connection.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq).offset(5).limit(1))
        original = dict(connection.execute(select(AuditEntry.__table__).where(AuditEntry.seq == middle)).one()._mapping)
    with _undone_afterwards(plane):
        with _superuser(plane) as connection:
            connection.execute(delete(AuditEntry).where(AuditEntry.seq == middle))
        problems = _problems(plane)
    assert ledger.tried(ATTACK, "delete a middle entry", problems[0] == f"entry {middle}: missing (deleted)")
    with _undone_afterwards(plane):
        with _superuser(plane) as connection:
            connection.execute(delete(AuditEntry).where(AuditEntry.seq == middle))
            forged = {**original, "actor": "nobody", "created_at": datetime(2001, 1, 1, tzinfo=UTC)}
            connection.execute(insert(AuditEntry), [forged])
        problems = _problems(plane)
    assert ledger.tried(
        ATTACK,
        "replace a middle entry by one dated 2001",
        f"entry {middle}: content does not match its hash (edited or forged)" in problems
        and any(p.startswith(f"entry {middle}: dated 2001-01-01") and "time ran backwards" in p for p in problems),
    )


def test_an_entry_dated_in_the_past_is_detected_even_when_correctly_chained(
    plane: ControlPlane, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer with the key but a clock set back (or a database whose clock was) is still caught."""
    owner = plane.users.caller_for("admin")
    with _undone_afterwards(plane):
        with plane.db.engine.connect() as connection:
            last = connection.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
        assert last is not None
        monkeypatch.setattr(
            himalia.identity.audit, "database_clock", lambda: literal(datetime(2001, 1, 1, tzinfo=UTC), UTCDateTime())
        )
        plane.projects.create_project(owner, CreateProject(key="BACKDATED", name="back-dated"))
        monkeypatch.undo()
        problems = _problems(plane)
    assert ledger.tried(
        ATTACK,
        "append an entry dated 2001 after the 2026 ones, correctly chained",
        len(problems) == 1
        and problems[0].startswith(f"entry {last + 1}: dated 2001-01-01")
        and "time ran backwards" in problems[0],
    )


def test_inserting_entries_after_the_end_is_detected(plane: ControlPlane, ledger: Ledger) -> None:
    undetected = []
    with plane.db.engine.connect() as connection:
        newest = dict(
            connection.execute(select(AuditEntry.__table__).order_by(AuditEntry.seq.desc()).limit(1)).one()._mapping
        )
    for moved in (False, True):
        for dated in (datetime(2001, 1, 1, tzinfo=UTC), datetime.now(UTC)):
            case = f"insert an entry dated {dated:%Y} after the end" + ("; head row moved onto it" if moved else "")
            with _undone_afterwards(plane):
                with _superuser(plane) as connection:
                    forged = {
                        **newest,
                        "seq": newest["seq"] + 1,
                        "created_at": dated,
                        "action": "project.delete",
                        "prev_hash": newest["hash"],
                        "hash": "f" * 64,
                    }
                    connection.execute(insert(AuditEntry), [forged])
                    if moved:
                        _set_head_row(connection, seq=forged["seq"], hash=forged["hash"])
                problems = _problems(plane)
            if not ledger.tried(ATTACK, case, any("content does not match its hash" in p for p in problems)):
                undetected.append(case)
    assert undetected == []


def test_rewriting_the_head_file_is_detected(
    plane: ControlPlane, history: dict[int, tuple[dict[str, Any], str]], ledger: Ledger
) -> None:
    path = Path(plane.audit_head_file)
    last = max(history)
    rewrites = {
        "head file moved forward, its seal kept": history[last][1].replace(f'"seq": {last}', f'"seq": {last + 5}'),
        "head file moved back, its seal kept": history[last][1].replace(f'"seq": {last}', f'"seq": {last - 1}'),
        "head file sealed with a guessed key": (
            f'{{"seq": {last}, "hash": "{history[last][0]["hash"]}", '
            f'"seal": "{head_seal(b"guessed", "file", last, history[last][0]["hash"])}"}}\n'
        ),
        "head file given the head row's seal": history[last][1].replace(
            history[last][1].split('"seal": "')[1].split('"')[0], str(history[last][0]["seal"])
        ),
        "head file emptied": "",
        "head file replaced by garbage": "{not json",
    }
    undetected = []
    for case, content in rewrites.items():
        with _undone_afterwards(plane):
            path.write_text(content)
            problems = _problems(plane)
        if not ledger.tried(ATTACK, case, any(str(path) in p for p in problems)):
            undetected.append(case)
    assert undetected == []


def test_the_evidence_outlives_a_restart_and_later_entries(
    plane: ControlPlane, history: dict[int, tuple[dict[str, Any], str]], ledger: Ledger, db_url: str
) -> None:
    """Appending re-seals the head and moves the file on: the disagreement is appended first."""
    last = max(history)
    _truncate(plane, history, last - 3, "head row replayed from a backup taken at that entry", "head file untouched")
    restarted = ControlPlane(home=plane.home, db_url=db_url, secret_keys=[SECRET_KEY], audit_key=AUDIT_KEY)
    restarted.start()  # a new process on the same home and store
    try:
        owner = restarted.users.caller_for("admin")
        for index in range(6):  # past the deleted entries' numbers
            restarted.projects.create_project(owner, CreateProject(key=f"AFTER_{index}", name="after"))
        problems = _problems(restarted)
    finally:
        restarted.stop()
    evidence = f"entry {last - 2}: records that when it was appended the head file {plane.audit_head_file} said"
    assert ledger.tried(
        ATTACK,
        "delete the last 3, replay the head row, restart and write 6 more entries",
        [p for p in problems if p.startswith(evidence)] != [],
    )


def test_postgresql_refuses_the_deletion_until_its_triggers_are_dropped(
    plane: ControlPlane, backend: str, ledger: Ledger
) -> None:
    if backend != "postgresql":
        pytest.skip("the append-only triggers are PostgreSQL's")
    refused = []
    for statement in ("DELETE FROM audit_entries WHERE seq > 3", "TRUNCATE audit_entries"):
        try:
            with plane.db.engine.begin() as connection:
                connection.execute(text(statement))
            refused.append(False)
        except DBAPIError as error:
            refused.append(ledger.tried(ATTACK, f"{statement} with the triggers in place", "append-only" in str(error)))
    assert refused == [True, True]
    assert _problems(plane) == []
