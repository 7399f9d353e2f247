"""Budgets: their endpoints and who may use them, their spend, and their alerts at 75 % and 100 %,
mailed once per budget, month and threshold to a real SMTP server (aiosmtpd), audited.

The watcher is given the instants it looks at; the usage it judges is seeded in the store.
"""

from collections.abc import Iterator
from concurrent.futures import wait
from datetime import UTC, datetime

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from himalia.controlplane import ControlPlane
from himalia.identity.caller import Caller
from himalia.operations.budget_alerts import CHECK_INTERVAL, UNUSABLE_ADDRESS, BudgetWatcher
from himalia.store.orm import AuditEntry, Budget, BudgetAlert, Project, Tier, TierUsage, User
from himalia.wire.compute import TierSpec
from himalia.wire.usage import CreateBudget

from ..conftest import LiveAPI
from ..scenarios.test_reporting import Mailbox, free_port


def at(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def mail() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def mailbox(mail: tuple[Mailbox, int], plane: ControlPlane) -> Mailbox:
    mail[0].reset()
    plane.config.Mailer.host = "127.0.0.1"  # named by the operator: the watcher mails
    plane.mailer.host, plane.mailer.port = "127.0.0.1", mail[1]
    return mail[0]


@pytest.fixture(autouse=True)
def gpu(plane: ControlPlane) -> None:
    """The tier the usage below is on (each row has its own price)."""
    plane.tiers.put_tier(Caller.operator("test-setup", client_address="test"), "gpu", TierSpec())


def use(plane: ControlPlane, login: str, started: datetime, ended: datetime | None, project: str | None) -> None:
    """A server of ``login`` on a tier at 2.00 an hour, counted to ``project``."""
    with plane.db.write() as session:
        session.add(
            TierUsage(
                user_id=session.scalar(select(User.id).where(User.login == login)),
                tier_id=session.scalar(select(Tier.id).where(Tier.name == "gpu")),
                kind="server",
                project_id=session.scalar(select(Project.id).where(Project.key == project)) if project else None,
                cost_per_hour=2.0,
                started_at=started,
                ended_at=ended,
            )
        )


def looked(watcher: BudgetWatcher, now: datetime) -> None:
    watcher.check(now)
    done, _ = wait(watcher.sending, timeout=30)
    for future in done:
        future.result()


def alerts(plane: ControlPlane) -> list[tuple[str, int, float]]:
    with plane.db.read() as session:
        rows = session.scalars(select(BudgetAlert).order_by(BudgetAlert.id))
        return [(a.period, a.threshold, round(a.spent, 2)) for a in rows]


def audited(plane: ControlPlane) -> list[str]:
    with plane.db.read() as session:
        return list(
            session.scalars(
                select(AuditEntry.action).where(AuditEntry.action.like("budget.alert%")).order_by(AuditEntry.seq)
            )
        )


def test_crossing_75_percent_mails_once_however_often_it_is_checked_and_100_percent_again(
    plane: ControlPlane, mailbox: Mailbox
) -> None:
    admin = plane.users.caller_for("admin")
    budget = plane.budgets.create_budget(admin, CreateBudget(project="ALPHA", amount=20))
    use(plane, "contributor", at(1, 0), None, "ALPHA")  # 2.00 an hour from midnight on March 1st, still running
    use(plane, "contributor", at(1, 0), None, None)  # the same person's usage for no project: not ALPHA's
    watcher = plane.new_budget_watcher()

    looked(watcher, at(1, 7))  # 14.00 of 20: 70 %
    assert alerts(plane) == [] and mailbox.messages == []

    looked(watcher, at(1, 7, 31))  # 15.03: past 75 %
    assert alerts(plane) == [("2026-03", 75, 15.03)]
    [message] = mailbox.messages
    assert message["Subject"] == "Budget: the project ALPHA has reached 75 % of its budget for 2026-03"
    assert sorted(str(to) for to in mailbox.envelopes[0].rcpt_tos) == ["admin@example.org", "projadmin@example.org"]
    body = message.get_content()
    assert "has spent 15.03 USD of its monthly budget of 20.00 USD in 2026-03 (UTC), 75 %." in body

    # Looked at again, and by a restarted control plane: nothing more.
    looked(watcher, at(1, 8))
    looked(plane.new_budget_watcher(), at(1, 8, 30))
    assert len(mailbox.messages) == 1 and len(alerts(plane)) == 1

    looked(watcher, at(1, 10, 1))  # 20.03: the budget is spent
    assert [a[:2] for a in alerts(plane)] == [("2026-03", 75), ("2026-03", 100)]
    assert len(mailbox.messages) == 2
    assert mailbox.messages[1]["Subject"] == "Budget: the project ALPHA has used up its budget for 2026-03"
    looked(watcher, at(2, 0))
    assert len(mailbox.messages) == 2
    assert audited(plane) == ["budget.alert", "budget.alert_report", "budget.alert", "budget.alert_report"]

    described = plane.budgets.get_budget(admin, budget.id, now=at(1, 12))
    assert (described.period, described.spent, described.percent) == ("2026-03", 24.0, 120.0)
    assert [(a.threshold, a.deliveries[0]["ok"]) for a in described.alerts] == [(75, True), (100, True)]


def test_the_scheduler_looks_every_few_minutes_and_a_new_month_starts_afresh(
    plane: ControlPlane, mailbox: Mailbox
) -> None:
    plane.budgets.create_budget(plane.users.caller_for("admin"), CreateBudget(group="contributors", amount=10))
    use(plane, "contributor", at(31, 0), at(31, 4), "ALPHA")  # 8.00 in March
    use(plane, "contributor", at(31, 22), at(1, 3, month=4), None)  # 4.00 in March, 6.00 in April
    watcher = plane.new_budget_watcher()
    assert watcher.watch(at(31, 23, 1)) == at(31, 23, 1) + CHECK_INTERVAL  # 10.03 of 10: both thresholds
    assert watcher.watch(at(31, 23, 2)) == at(31, 23, 1) + CHECK_INTERVAL  # not yet looked at again
    wait(watcher.sending, timeout=30)
    assert [a[:2] for a in alerts(plane)] == [("2026-03", 75), ("2026-03", 100)]
    # A group's alerts go to the administrators.
    assert {str(to) for envelope in mailbox.envelopes for to in envelope.rcpt_tos} == {"admin@example.org"}

    looked(watcher, at(1, 3, month=4))  # 6.00 of April's 10: 60 %
    assert len(alerts(plane)) == 2
    use(plane, "contributor", at(1, 3, month=4), at(1, 4, month=4), "ALPHA")
    looked(watcher, at(1, 5, month=4))  # 8.00: 80 %
    assert alerts(plane)[-1] == ("2026-04", 75, 8.0)
    assert len(mailbox.messages) == 3


def test_an_alert_without_a_mail_server_says_so(plane: ControlPlane) -> None:
    plane.budgets.create_budget(plane.users.caller_for("admin"), CreateBudget(project="ALPHA", amount=1))
    use(plane, "reader", at(1, 0), at(1, 1), "ALPHA")
    looked(plane.new_budget_watcher(), at(1, 2))
    with plane.db.read() as session:
        [_, alert_100] = session.scalars(select(BudgetAlert).order_by(BudgetAlert.threshold))
    assert alert_100.deliveries == [
        {
            "to": "admin@example.org, projadmin@example.org",
            "ok": False,
            "detail": "no mail server is configured (c.Mailer.host)",
        }
    ]


def test_an_unusable_stored_email_is_a_failed_delivery_and_everyone_else_is_still_mailed(
    plane: ControlPlane, mailbox: Mailbox
) -> None:
    """Emails stored before they were checked (a pasted newline) cannot go in a header: each is a
    failed delivery of its own, and the alert is still mailed to the others, for every budget."""
    with plane.db.write() as session:
        admin = session.scalars(select(User).where(User.login == "admin")).one()
        admin.email = "admin@example.org\n"
    admin_caller = plane.users.caller_for("admin")
    plane.budgets.create_budget(admin_caller, CreateBudget(project="ALPHA", amount=1))
    plane.budgets.create_budget(admin_caller, CreateBudget(group="contributors", amount=1))
    use(plane, "contributor", at(1, 0), at(1, 1), "ALPHA")  # 2.00: both budgets past 100 %

    looked(plane.new_budget_watcher(), at(1, 2))  # raises nothing, though the admin's address is unusable
    assert [a[:2] for a in alerts(plane)] == [("2026-03", 75), ("2026-03", 100)] * 2
    assert {str(to) for envelope in mailbox.envelopes for to in envelope.rcpt_tos} == {"projadmin@example.org"}
    assert len(mailbox.messages) == 2  # ALPHA's two alerts; the group's go to the administrator alone
    unusable = {"to": "admin@example.org\\n", "ok": False, "detail": UNUSABLE_ADDRESS}
    with plane.db.read() as session:
        by_budget = session.execute(
            select(Budget.project_id, BudgetAlert.deliveries).join(Budget, Budget.id == BudgetAlert.budget_id)
        ).all()
    for project_id, deliveries in by_budget:
        if project_id is not None:
            assert deliveries == [
                {"to": "projadmin@example.org", "ok": True, "detail": "sent after 1 attempt(s)"},
                unusable,
            ]
        else:
            assert deliveries == [unusable]
    assert audited(plane).count("budget.alert_report") == 4


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_budgets_are_administrators_to_set_and_project_administrators_to_read(api: LiveAPI) -> None:
    made = api.request("POST", "/budgets", "admin", json={"project": "ALPHA", "amount": 500})
    assert made.status_code == 201, made.text
    budget = made.json()
    assert (budget["project"], budget["group"], budget["amount"], budget["currency"]) == ("ALPHA", None, 500, "USD")
    assert budget["spent"] == 0 and budget["alerts"] == [] and budget["created_by"] == "admin"
    group = api.request("POST", "/budgets", "admin", json={"group": "readers", "amount": 50}).json()

    assert [b["id"] for b in api.request("GET", "/budgets", "admin").json()] == [budget["id"], group["id"]]
    assert [b["project"] for b in api.request("GET", "/budgets", "projadmin").json()] == ["ALPHA"]
    assert api.request("GET", "/budgets", "contributor").json() == []
    assert api.request("GET", f"/budgets/{budget['id']}", "projadmin").status_code == 200
    assert api.request("GET", f"/budgets/{group['id']}", "projadmin").status_code == 404
    assert api.request("GET", f"/budgets/{budget['id']}", "reader").status_code == 404
    for role in ("reader", "projadmin"):
        assert api.request("POST", "/budgets", role, json={"group": "contributors", "amount": 5}).status_code == 403
        assert api.request("PATCH", f"/budgets/{budget['id']}", role, json={"amount": 1}).status_code == 403
        assert api.request("DELETE", f"/budgets/{budget['id']}", role).status_code == 403

    changed = api.request("PATCH", f"/budgets/{budget['id']}", "admin", json={"amount": 750.5})
    assert changed.status_code == 200 and changed.json()["amount"] == 750.5
    again = api.request("POST", "/budgets", "admin", json={"project": "ALPHA", "amount": 1})
    assert again.status_code == 409 and f"#{budget['id']}" in again.json()["message"]
    assert api.request("DELETE", f"/budgets/{budget['id']}", "admin").status_code == 204
    assert api.request("GET", f"/budgets/{budget['id']}", "admin").status_code == 404
    actions = [e["action"] for e in api.request("GET", "/audit?action=budget", "admin").json()["items"]]
    assert actions == ["budget.delete", "budget.update", "budget.create", "budget.create"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 5}, "body"),
        ({"project": "ALPHA", "group": "readers", "amount": 5}, "body"),
        ({"project": "ALPHA", "amount": 0}, "amount"),
        ({"project": "ALPHA", "amount": -3}, "amount"),
        ({"project": "ALPHA", "amount": "lots"}, "amount"),
        ({"project": "ALPHA", "amount": 1e13}, "amount"),
        ({"project": "NOPE", "amount": 5}, "project"),
        ({"project": "alpha'--", "amount": 5}, "project"),
        ({"group": "nobody-here", "amount": 5}, "group"),
        ({"project": "ALPHA", "amount": 5, "currency": "EUR"}, "currency"),
    ],
)
def test_a_bad_budget_is_refused_naming_its_field(api: LiveAPI, body: dict[str, object], field: str) -> None:
    refused = api.request("POST", "/budgets", "admin", json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["field"] == field


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("budget_id", ["0", "x", "1.5", "-1", "٣", "9" * 19, "1; DROP TABLE budgets"])
def test_a_budget_that_is_not_there_is_a_404(api: LiveAPI, budget_id: str) -> None:
    assert api.request("GET", f"/budgets/{budget_id}", "admin").status_code == 404
    assert api.request("PATCH", f"/budgets/{budget_id}", "admin", json={"amount": 1}).status_code == 404


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_budget_watcher_runs_wherever_the_scheduler_runs(plane: ControlPlane) -> None:
    plane.start_engine()
    assert plane.scheduler is not None
    assert [type(w).__name__ for w in plane.scheduler.watchers] == [
        "DeadlineWatcher",
        "BudgetWatcher",
        "RetentionWatcher",
    ]
