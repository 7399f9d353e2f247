"""A bad address stored before addresses were checked stops no other report (real aiosmtpd).

A profile email or a reporter's ``to`` written before their checks existed may hold a newline:
the report it is in fails with a recorded reason, and every other reporter still sends.
"""

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from traitlets.config import Config

from himalia.scenarios.reporting import Delivery, Mailer, failure_notice, report_all
from himalia.wire.definitions import EmailReporter

from .test_reporting import Mailbox, Smtp, free_port, make_summary


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield Smtp(mailbox, port)
    controller.stop()


def test_a_run_as_email_with_a_newline_sends_no_failure_notice_and_raises_nothing(smtp: Smtp) -> None:
    mailer = Mailer(config=Config({"Mailer": {"host": "127.0.0.1", "port": smtp.port}}))  # named: notices go
    assert failure_notice(make_summary(run_as_email="owner@example.org\n"), mailer) == []
    assert failure_notice(make_summary(run_as_email="a@example.org, b@example.org"), mailer) == []
    [notice] = failure_notice(make_summary(run_as_email="owner@example.org"), mailer)
    assert notice.to == ["owner@example.org"]


def test_a_stored_reporter_whose_address_breaks_the_header_fails_alone(smtp: Smtp) -> None:
    # As loaded from a definition saved before ``to`` was checked (no validation on the way in).
    stored = EmailReporter.model_construct(
        **{**EmailReporter(type="email", to=["x@example.org"]).model_dump(), "to": ["old@example.org\n", "x@y.org"]}
    )
    good = EmailReporter(type="email", to=["ops@example.org"])
    bad_delivery, good_delivery = report_all([stored, good], make_summary(), smtp.mailer(), "", sleep=lambda _: None)
    assert not bad_delivery.sent and bad_delivery.error == "could not prepare the report (details in the server log)"
    assert good_delivery == Delivery("email to ops@example.org", sent=True, attempts=1)
    assert [envelope.rcpt_tos for envelope in smtp.mailbox.envelopes] == [["ops@example.org"]]
