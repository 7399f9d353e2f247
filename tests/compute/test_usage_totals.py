"""Usage totals against sums computed by hand over a seeded month, on SQLite and PostgreSQL.

The month is March 2026. Its usage rows include one crossing into it from February, one crossing
out of it into April and one still open, each at its own cost per hour (one at a price the tier
no longer has), so the month split, the open row and the row's own price are all checked.
"""

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from himalia.compute.usage import OTHER_PROJECTS
from himalia.controlplane import ControlPlane
from himalia.core.permissions import GlobalPermission as G
from himalia.identity.caller import Caller
from himalia.store.orm import Project, Tier, TierUsage, User
from himalia.wire.compute import TierSpec
from himalia.wire.identity import CreateGroup, CreateProject

from ..conftest import LiveAPI

MARCH, APRIL, MAY = (datetime(2026, month, 1, tzinfo=UTC) for month in (3, 4, 5))


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


#: (user, tier, kind, project, cost per hour, started, ended); what each adds to March is beside it.
ROWS = [
    ("reader", "small", "server", None, 0.5, at(3, 2, 10), at(3, 2, 14)),  # 4 h, 2.00
    ("contributor", "small", "run", "ALPHA", 0.5, at(3, 3, 0), at(3, 3, 1, 30)),  # 1.5 h, 0.75
    ("contributor", "gpu", "server", "ALPHA", 3.0, at(3, 10, 8), at(3, 10, 10)),  # 2 h, 6.00
    ("reader", "gpu", "server", "BETA", 3.0, at(2, 28, 22), at(3, 1, 3)),  # 3 h, 9.00 (2 h in February)
    ("projadmin", "small", "server", "ALPHA", 0.5, at(3, 31, 20), at(4, 1, 2)),  # 4 h, 2.00 (2 h in April)
    ("admin", "gpu", "server", None, 3.0, at(3, 31, 12), None),  # open: 12 h, 36.00 in March
    ("contributor", "small", "run", "ALPHA", 1.25, at(3, 20, 0), at(3, 20, 2)),  # 2 h, 2.50 (an older price)
    ("reader", "small", "server", None, 0.5, at(2, 10, 9), at(2, 10, 10)),  # February only: 1 h, 0.50
]

MARCH_BY_TIER = {"gpu": (17.0, 51.0), "small": (11.5, 7.25)}
MARCH_BY_USER = {"admin": (12.0, 36.0), "reader": (7.0, 11.0), "contributor": (5.5, 9.25), "projadmin": (4.0, 2.0)}
MARCH_BY_PROJECT = {None: (16.0, 38.0), "ALPHA": (9.5, 11.25), "BETA": (3.0, 9.0)}


@pytest.fixture
def seeded(plane: ControlPlane) -> ControlPlane:
    operator = Caller.operator("test-setup", client_address="test")
    plane.tiers.put_tier(operator, "small", TierSpec(cost_per_hour=0.75))  # the price has changed since
    plane.tiers.put_tier(operator, "gpu", TierSpec(cost_per_hour=3.0))
    plane.projects.create_project(plane.users.caller_for("admin"), CreateProject(key="BETA", name="Beta"))
    with plane.db.write() as session:
        users = dict(session.execute(select(User.login, User.id)).all())
        tiers = dict(session.execute(select(Tier.name, Tier.id)).all())
        projects = dict(session.execute(select(Project.key, Project.id)).all())
        for login, tier, kind, project, cost, started, ended in ROWS:
            session.add(
                TierUsage(
                    user_id=users[login],
                    tier_id=tiers[tier],
                    kind=kind,
                    project_id=projects[project] if project else None,
                    cost_per_hour=cost,
                    started_at=started,
                    ended_at=ended,
                )
            )
    return plane


def sums(totals: dict[str, object]) -> dict[object, tuple[float, float]]:
    return {t["key"]: (t["hours"], t["cost"]) for t in totals["totals"]}  # type: ignore[index,union-attr,attr-defined]


def approx(expected: dict[object, tuple[float, float]]) -> object:
    return {key: pytest.approx(value, abs=1e-6) for key, value in expected.items()}


def test_march_totals_match_the_hand_computed_sums(seeded: ControlPlane) -> None:
    admin = seeded.users.caller_for("admin")
    window = {"since": MARCH, "until": APRIL, "now": datetime(2026, 12, 1, tzinfo=UTC)}
    by_tier = seeded.usage.totals(admin, "tier", **window)
    assert by_tier.everyone and by_tier.currency == "USD"
    assert (by_tier.hours, by_tier.cost) == (pytest.approx(28.5), pytest.approx(58.25))
    for by, expected in (("tier", MARCH_BY_TIER), ("user", MARCH_BY_USER), ("project", MARCH_BY_PROJECT)):
        totals = seeded.usage.totals(admin, by, **window).model_dump()  # type: ignore[arg-type]
        assert sums(totals) == approx(expected), by
        assert [t["key"] for t in totals["totals"]] == list(expected)  # the largest cost first
        assert (totals["hours"], totals["cost"]) == (pytest.approx(28.5), pytest.approx(58.25))
    # By month over February and March: the row crossing the boundary is split at midnight.
    months = seeded.usage.totals(admin, "month", since=datetime(2026, 2, 1, tzinfo=UTC), until=APRIL)
    assert sums(months.model_dump()) == approx({"2026-02": (3.0, 6.5), "2026-03": (28.5, 58.25)})


def test_an_open_row_counts_until_now(seeded: ControlPlane) -> None:
    admin = seeded.users.caller_for("admin")
    now = at(4, 1, 6)  # six hours into April: the open row has run 6 h of it, the crossing one 2 h
    months = seeded.usage.totals(admin, "month", since=MARCH, until=MAY, now=now)
    assert sums(months.model_dump()) == approx({"2026-03": (28.5, 58.25), "2026-04": (8.0, 19.0)})
    # The default window is this month, up to now.
    this_month = seeded.usage.totals(admin, "user", now=now)
    assert (this_month.since, this_month.until) == (APRIL, MAY)
    assert sums(this_month.model_dump()) == approx({"admin": (6.0, 18.0), "projadmin": (2.0, 1.0)})


def test_people_total_their_own_usage_and_only_tier_managers_anyone_s(seeded: ControlPlane) -> None:
    reader = seeded.users.caller_for("reader")
    mine = seeded.usage.totals(reader, "tier", since=MARCH, until=APRIL)
    assert not mine.everyone
    assert sums(mine.model_dump()) == approx({"gpu": (3.0, 9.0), "small": (4.0, 2.0)})
    assert seeded.usage.totals(reader, "tier", since=MARCH, until=APRIL, user="reader") == mine
    admin = seeded.users.caller_for("admin")
    theirs = seeded.usage.totals(admin, "tier", since=MARCH, until=APRIL, user="reader")
    assert sums(theirs.model_dump()) == sums(mine.model_dump()) and not theirs.everyone
    nobody = seeded.usage.totals(seeded.users.caller_for("nogrant"), "project", since=MARCH, until=APRIL)
    assert (nobody.totals, nobody.hours, nobody.cost) == ([], 0.0, 0.0)


def test_the_api_serves_totals_and_a_csv_whose_lines_add_up(api: LiveAPI, seeded: ControlPlane) -> None:
    window = "since=2026-03-01&until=2026-04-01"
    totals = api.request("GET", f"/usage/totals?by=project&{window}", "admin")
    assert totals.status_code == 200, totals.text
    assert sums(totals.json()) == approx(MARCH_BY_PROJECT)
    assert totals.json()["since"].startswith("2026-03-01T00:00:00")

    export = api.request("GET", f"/usage/export?format=csv&{window}", "admin")
    assert export.status_code == 200 and export.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="himalia-usage.csv"' in export.headers["Content-Disposition"]
    lines = list(csv.DictReader(io.StringIO(export.text)))
    assert list(lines[0]) == ["month", "tier", "user", "project", "hours", "cost", "currency"]
    assert {line["month"] for line in lines} == {"2026-03"} and {line["currency"] for line in lines} == {"USD"}
    by_user: dict[str, float] = {}
    for line in lines:
        by_user[line["user"]] = by_user.get(line["user"], 0.0) + float(line["cost"])
    assert by_user == approx({user: cost for user, (_, cost) in MARCH_BY_USER.items()})  # type: ignore[comparison-overlap]
    crossing = [line for line in lines if line["project"] == "BETA"]
    assert crossing == [
        {
            "month": "2026-03",
            "tier": "gpu",
            "user": "reader",
            "project": "BETA",
            "hours": "3.0000",
            "cost": "9.0000",
            "currency": "USD",
        }
    ]
    own = api.request("GET", f"/usage/export?{window}", "reader")
    assert {line["user"] for line in csv.DictReader(io.StringIO(own.text))} == {"reader"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("by=cost", "by"),
        ("since=2026-04-01&until=2026-03-01", "until"),
        ("since=2026-03-01&until=2026-03-01", "until"),
        ("since=2025-01-01&until=2026-03-01", "until"),
        ("since=0001-01-01", "since"),
        ("since=9999-12-31T23:59:59", "since"),
        ("since=yesterday", "since"),
        ("user=contributor", "user"),
    ],
)
def test_bad_windows_and_other_people_s_usage_are_refused_naming_the_field(
    api: LiveAPI, seeded: ControlPlane, query: str, field: str
) -> None:
    refused = api.request("GET", f"/usage/totals?{query}", "reader")
    assert refused.status_code in (400, 403), refused.text
    assert refused.json()["field"] == field
    if field == "user":
        assert refused.status_code == 403 and "manage_tiers" in refused.json()["message"]
        assert api.request("GET", f"/usage/export?{query}", "reader").status_code == 403
        unknown = api.request("GET", "/usage/totals?user=nobody-here", "admin")
        assert unknown.status_code == 404 and unknown.json()["field"] == "user"


def test_a_server_started_for_a_project_counts_there(api: LiveAPI, seeded: ControlPlane) -> None:
    body = {"user": "reader", "tier": "small", "server_name": "", "project": "ALPHA"}
    started = api.request("POST", "/servers", "admin", json=body)
    assert started.status_code == 201, started.text
    assert started.json()["project"] == "ALPHA"
    with seeded.db.read() as session:
        usage = session.get_one(TierUsage, started.json()["id"])
        assert session.get_one(Project, usage.project_id).key == "ALPHA"
    # Its person must be able to read the project; an unknown project is named.
    refused = api.request("POST", "/servers", "admin", json={**body, "user": "nogrant"})
    assert refused.status_code == 403 and refused.json()["field"] == "project"
    unknown = api.request("POST", "/servers", "admin", json={**body, "project": "NOPE"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "project"
    malformed = api.request("POST", "/servers", "admin", json={**body, "project": "alpha; drop"})
    assert malformed.status_code == 400 and malformed.json()["field"] == "project"


def test_a_tier_manager_sees_everyone_s_usage_but_only_the_keys_of_projects_they_may_read(
    api: LiveAPI, seeded: ControlPlane
) -> None:
    """``manage_tiers`` totals everyone's usage; it tells nobody the names of projects hidden from
    them (BETA is 404 for the reader): those are merged into one row whose hours and cost still count."""
    operator = Caller.operator("test-setup", client_address="test")
    seeded.users.create_group(operator, CreateGroup(name="tier-managers", permissions=[G.MANAGE_TIERS]))
    seeded.users.add_member(operator, "tier-managers", "reader")
    assert api.request("GET", "/projects/BETA", "reader").status_code == 404
    window = "since=2026-03-01&until=2026-04-01"

    totals = api.request("GET", f"/usage/totals?by=project&{window}", "reader")
    assert totals.status_code == 200, totals.text
    assert totals.json()["everyone"]
    assert sums(totals.json()) == approx({None: (16.0, 38.0), "ALPHA": (9.5, 11.25), OTHER_PROJECTS: (3.0, 9.0)})
    assert (totals.json()["hours"], totals.json()["cost"]) == (pytest.approx(28.5), pytest.approx(58.25))

    export = api.request("GET", f"/usage/export?{window}", "reader")
    assert export.status_code == 200 and "BETA" not in export.text
    lines = list(csv.DictReader(io.StringIO(export.text)))
    assert {line["user"] for line in lines} == set(MARCH_BY_USER)  # people's logins: theirs to manage
    hidden = [line for line in lines if line["project"] == OTHER_PROJECTS]
    assert [(line["user"], line["hours"], line["cost"]) for line in hidden] == [("reader", "3.0000", "9.0000")]
    assert sum(float(line["cost"]) for line in lines) == pytest.approx(58.25, abs=1e-3)

    records = api.request("GET", "/usage?limit=100", "reader")
    assert records.status_code == 200 and "BETA" not in records.text
    assert {r["project"] for r in records.json()["items"]} == {None, "ALPHA", OTHER_PROJECTS}
    # An administrator still sees every key.
    assert "BETA" in {r["project"] for r in api.request("GET", "/usage?limit=100", "admin").json()["items"]}
    assert "BETA" in api.request("GET", f"/usage/export?{window}", "admin").text
