"""The attacker's suite: each test tries a class of attack in many variants and records them.

Every variant goes through ``ledger.tried(attack_class, case, refused)``; the test then asserts
what must hold. At the end of the session the terminal summary prints, per class, how many cases
were tried and how many the platform refused, so a reader sees the breadth, not only a green dot.
"""

import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import text

from ..postgres import TemporaryPostgres


@dataclass
class Ledger:
    tried_cases: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refused_cases: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def tried(self, attack_class: str, case: object, refused: bool) -> bool:
        """Count one variant of ``attack_class``; return ``refused`` so a test can assert on it."""
        self.tried_cases[attack_class] += 1
        if refused:
            self.refused_cases[attack_class] += 1
        return refused


LEDGER = Ledger()


@pytest.fixture
def ledger() -> Ledger:
    return LEDGER


@contextmanager
def empty_postgres_database(request: pytest.FixtureRequest, prefix: str) -> Iterator[str]:
    """A new database on the session's PostgreSQL server, as a psycopg URL; dropped afterwards."""
    server: TemporaryPostgres = request.getfixturevalue("postgres")
    admin: Any = request.getfixturevalue("postgres_admin")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as sql:
        sql.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield server.url(name).replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with admin.connect() as sql:
            sql.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LEDGER.tried_cases:
        return
    terminalreporter.section("attack classes (tests/security)")
    width = max(len(name) for name in LEDGER.tried_cases)
    for name in sorted(LEDGER.tried_cases):
        tried, refused = LEDGER.tried_cases[name], LEDGER.refused_cases[name]
        terminalreporter.write_line(f"{name:<{width}}  {tried:>6} tried  {refused:>6} refused")
    total_tried, total_refused = sum(LEDGER.tried_cases.values()), sum(LEDGER.refused_cases.values())
    terminalreporter.write_line(f"{'all classes':<{width}}  {total_tried:>6} tried  {total_refused:>6} refused")
