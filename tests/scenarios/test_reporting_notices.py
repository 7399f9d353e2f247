"""A failed run of a scenario without reporters mails its run-as user, with a link to the run's
page in the UI; ``notify_on_failure: false`` turns it off. Real runs, a real SMTP server (aiosmtpd)."""

import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from himalia.controlplane import ControlPlane
from himalia.core.errors import Forbidden
from himalia.identity.audit import AuditFilter
from himalia.identity.caller import Caller

from ..conftest import LiveAPI
from .conftest import add_row_checks, saved, start, wait
from .test_reporting import Mailbox, body_of, free_port

PUBLIC_URL = "https://hub.example.com/"
GATE = {"name": "Gate", "type": "run_checks", "dataset": "transactions", "checks": ["Enough rows"]}


@pytest.fixture
def mailbox(plane: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    """A real SMTP server on loopback, which the plane's mailer is configured to use."""
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("HIMALIA_SMTP_HOST", "127.0.0.1")
    plane.mailer.host, plane.mailer.port, plane.mailer.timeout = "127.0.0.1", port, 5.0
    plane.public_url = PUBLIC_URL
    yield box
    controller.stop()


def delivered(box: Mailbox, count: int, timeout: float = 30) -> list[EmailMessage]:
    """The messages once ``count`` arrived (reports are sent after the run ended)."""
    deadline = time.monotonic() + timeout
    while len(box.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return list(box.messages)


def recorded_deliveries(light: LiveAPI, scenario: str, run_id: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The run's deliveries once recorded: after the SMTP exchange ends, so after the message arrived."""
    deadline = time.monotonic() + timeout
    while not (deliveries := wait(light, scenario, run_id)["deliveries"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return deliveries


def test_a_failed_run_without_reporters_mails_its_run_as_user_a_link_to_the_run(
    light: LiveAPI, mailbox: Mailbox
) -> None:
    add_row_checks(light.plane)
    saved(light, {"id": "silent", "name": "Silent", "steps": [GATE]})
    run = wait(light, "silent", start(light, "silent"))
    assert run["state"] == "failed"
    (message,) = delivered(mailbox, 1)
    assert mailbox.envelopes[0].rcpt_tos == ["admin@example.org"]  # the run-as user's profile email
    assert message["Subject"] == f"Silent failed (project ALPHA, run #{run['id']})"
    link = f"{PUBLIC_URL}lab?himalia-run=ALPHA/silent/{run['id']}"
    assert f"Open the run: {link}\n" in body_of(message)
    attached = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    assert "Enough rows" in attached["run.log"]
    deliveries = recorded_deliveries(light, "silent", run["id"])
    assert [(d["reporter"], d["sent"]) for d in deliveries] == [("email to admin@example.org", True)]
    audit = light.plane.audit.list_entries(Caller.operator(), AuditFilter(action="scenario.report"), 10, 0).items
    assert [(e.object_id, e.actor, e.details["deliveries"]) for e in audit] == [
        ("silent", "system:reporter", [{"reporter": "email to admin@example.org", "sent": True}])
    ]


def test_no_notice_when_opted_out_when_the_run_succeeded_or_without_mail_configured(
    light: LiveAPI, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_row_checks(light.plane)
    saved(light, {"id": "quiet", "name": "Quiet", "steps": [GATE], "notify_on_failure": False})
    set_a = {"name": "Set", "type": "set_variables", "values": {"a": 1}}
    saved(light, {"id": "fine", "name": "Fine", "steps": [set_a]})
    saved(light, {"id": "loud", "name": "Loud", "steps": [GATE]})
    quiet, fine = wait(light, "quiet", start(light, "quiet")), wait(light, "fine", start(light, "fine"))
    assert (quiet["state"], fine["state"]) == ("failed", "succeeded")
    loud = wait(light, "loud", start(light, "loud"))
    (message,) = delivered(mailbox, 1)
    assert message["Subject"] == f"Loud failed (project ALPHA, run #{loud['id']})"
    assert wait(light, "quiet", quiet["id"])["deliveries"] == []
    assert wait(light, "fine", fine["id"])["deliveries"] == []
    monkeypatch.delenv("HIMALIA_SMTP_HOST")  # the mailer's default localhost:25 is nobody's choice
    unconfigured = wait(light, "loud", start(light, "loud"))
    time.sleep(1)
    assert len(mailbox.messages) == 1
    assert wait(light, "loud", unconfigured["id"])["deliveries"] == []


def test_a_reporter_attaches_the_rows_that_broke_a_check_of_the_run(light: LiveAPI, mailbox: Mailbox) -> None:
    conditions = {"conditions": [{"name": "small", "column": "purchase_amount", "max": 50}]}
    patched = light.request("PATCH", "/projects/ALPHA/datasets/transactions", json=conditions)
    assert patched.status_code == 200, patched.text
    check = {"name": "Small purchases", "type": "range", "metric": "invalid_count:small", "max": 0}
    assert light.request("POST", "/projects/ALPHA/datasets/transactions/checks", json=check).status_code == 201
    reporter = {"type": "email", "to": ["ops@example.org"], "attach": {"report": False, "failing_rows": True}}
    gate = {"name": "Gate", "type": "run_checks", "dataset": "transactions", "checks": ["Small purchases"]}
    saved(light, {"id": "rows", "name": "Rows", "steps": [gate], "reporters": [reporter]})
    run = wait(light, "rows", start(light, "rows"))
    assert run["state"] == "failed"
    (message,) = delivered(mailbox, 1)
    attached = {part.get_filename(): part.get_content() for part in message.iter_attachments()}
    lines = attached["failing-rows-transactions-Small_purchases.csv"].splitlines()
    header = lines[0].split(",")
    amounts = [float(line.split(",")[header.index("purchase_amount")]) for line in lines[1:]]
    assert len(amounts) == 10 and all(amount > 50 for amount in amounts)

    reader = light.plane.users.caller_for("reader")  # reads the project, may not send its data out
    with pytest.raises(Forbidden):
        light.plane.checks.failing_rows_of_run(reader, "ALPHA", run["id"])
