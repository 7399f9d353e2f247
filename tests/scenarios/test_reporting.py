"""Scenario reporters against a real SMTP server (aiosmtpd) and a real HTTP receiver.

Nothing network-facing is mocked: emails go through smtplib to aiosmtpd on a loopback port,
webhooks through requests to an ``http.server`` that answers a scripted list of statuses (on
127.0.0.1, which the tests allow as an operator with a local receiver would).
Only the sleeps between retries are recorded instead of slept.
"""

import base64
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509

from himalia.core.errors import Forbidden
from himalia.scenarios.reporting import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CheckSummary,
    Delivery,
    Mailer,
    RunSummary,
    StepSummary,
    WebhookSettings,
    build_email,
    deliver,
    redact_url,
    render,
    report_all,
    should_send,
    slack_payload,
    teams_payload,
    template_values,
    verify_signature,
)
from himalia.wire.definitions import EmailAttachments, EmailReporter, WebhookReporter

from ..tls import self_signed

LOGIN = "reporter"
PASSWORD = "s3cr3t-P@ssw0rd"
WEBHOOK_KEY = "whk-test-key"
QUERY_SECRET = "token=xoxb-QUERY-SECRET"
PARIS = dt.timezone(dt.timedelta(hours=1), "CET")
#: The receivers below listen on loopback, which webhooks refuse unless the operator allows it.
LOCAL_RECEIVERS = WebhookSettings(allowed_destinations=["127.0.0.1"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def make_summary(**changes: Any) -> RunSummary:
    summary = RunSummary(
        project="FRAUD",
        scenario_id="daily-scoring",
        scenario_name="Daily fraud scoring",
        run_id=42,
        outcome="failed",
        previous_outcome="succeeded",
        trigger="cron 2026-11-22 02:00 Europe/Paris",
        started_at=dt.datetime(2026, 11, 22, 2, 0, 0, tzinfo=PARIS),
        ended_at=dt.datetime(2026, 11, 22, 2, 3, 5, tzinfo=PARIS),
        steps=[
            StepSummary("Check inputs", "run_checks", "succeeded", seconds=1.25),
            StepSummary("Score <all>", "notebook", "failed", "ZeroDivisionError: division by zero", 181.0),
            StepSummary("Publish", "notebook", "skipped"),
        ],
        checks=[
            CheckSummary("transactions", "row count", "ERROR", "12 is below the minimum 1000"),
            CheckSummary("transactions", "fresh", "OK", "updated 2h ago"),
        ],
        variables={"company": "ACME", "min_transactions": 1000, "regions": ["eu", "us"]},
        message="step 'Score <all>' failed",
        url="https://himalia.example/projects/FRAUD/scenarios/daily-scoring/runs/42",
        log="line 1\n" * 10 + "the end\n",
    )
    return replace(summary, **changes)


def email_reporter(**changes: Any) -> EmailReporter:
    return EmailReporter(**{"type": "email", "to": ["ops@example.com", "lead@example.com"], **changes})


# -- SMTP ------------------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """An aiosmtpd handler: stores what it accepts, answers ``data_replies`` first."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)
    authenticated: list[bool] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        self.envelopes.append(envelope)
        self.authenticated.append(bool(session.authenticated))
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == LOGIN.encode() and data.password == PASSWORD.encode()
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    def reset(self) -> None:
        for items in (self.messages, self.envelopes, self.authenticated, self.data_replies, self.logins):
            items.clear()


@dataclass
class Smtp:
    mailbox: Mailbox
    port: int

    def mailer(self, **settings: Any) -> Mailer:
        return Mailer(**{"host": "127.0.0.1", "port": self.port, "timeout": 5.0, **settings})


def start(controller: Controller) -> Controller:
    controller.start()
    return controller


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[Smtp]:
    mailbox = Mailbox()
    port = free_port()
    controller = start(
        Controller(mailbox, hostname="127.0.0.1", port=port, authenticator=mailbox.authenticate, auth_require_tls=False)
    )
    yield Smtp(mailbox, port)
    controller.stop()


@pytest.fixture
def smtp(smtp_server: Smtp) -> Smtp:
    smtp_server.mailbox.reset()
    return smtp_server


def received(smtp: Smtp) -> EmailMessage:
    assert len(smtp.mailbox.messages) == 1
    return smtp.mailbox.messages[0]


def text_of(part: Any) -> str:
    """A text part's content as written (SMTP carries CRLF line ends)."""
    text: str = part.get_content()
    return text.replace("\r\n", "\n")


def body_of(message: EmailMessage) -> str:
    return text_of(message.get_body(("plain",)))


def test_subject_and_body_are_templates_of_run_values_and_variables(smtp: Smtp) -> None:
    reporter = email_reporter(
        subject="[${project}] ${scenarioName} ${outcome} for ${company} ${nosuch}",
        body="Run ${runId} (${trigger}), at least ${min_transactions} in ${regions}.\n"
        "Steps:\n${steps}\nChecks:\n${checks}\nSee ${url}\nCost: $5, literal $${company}\n",
    )
    delivery = deliver(reporter, make_summary(), smtp.mailer(), "")

    assert delivery == Delivery("email to ops@example.com, lead@example.com", sent=True, attempts=1)
    message = received(smtp)
    assert message["Subject"] == "[FRAUD] Daily fraud scoring failed for ACME ${nosuch}"
    assert message["From"] == "himalia@localhost"
    assert smtp.mailbox.envelopes[0].rcpt_tos == ["ops@example.com", "lead@example.com"]
    body = body_of(message)
    assert body.startswith('Run 42 (cron 2026-11-22 02:00 Europe/Paris), at least 1000 in ["eu", "us"].\n')
    assert "succeeded Check inputs (run_checks, 1.2s)\n" in body
    assert "failed    Score <all> (notebook, 3m 01s): ZeroDivisionError: division by zero\n" in body
    assert "skipped   Publish (notebook)\n" in body
    assert "ERROR   transactions / row count: 12 is below the minimum 1000\n" in body
    assert "OK      transactions / fresh: updated 2h ago\n" in body
    assert "See https://himalia.example/projects/FRAUD/scenarios/daily-scoring/runs/42\n" in body
    assert "Cost: $5, literal ${company}\n" in body


def test_run_values_win_over_variables_and_line_breaks_stay_out_of_the_subject() -> None:
    summary = make_summary(variables={"outcome": "succeeded", "note": "two\nlines"})
    assert render("${outcome} ${note}", template_values(summary)) == "failed two\nlines"
    message = build_email(email_reporter(subject="${outcome}: ${note}"), summary, "robot@example.com")
    assert message["Subject"] == "failed: two lines"
    assert message["Auto-Submitted"] == "auto-generated"


def test_the_default_body_has_outcome_trigger_times_steps_checks_and_variables(smtp: Smtp) -> None:
    deliver(email_reporter(), make_summary(), smtp.mailer(sender="Himalia <robot@example.com>"), "")

    message = received(smtp)
    assert message["Subject"] == "Daily fraud scoring: failed"
    assert message["From"] == "Himalia <robot@example.com>"
    assert body_of(message) == (
        "Daily fraud scoring failed.\n"
        "Project FRAUD, run #42, cron 2026-11-22 02:00 Europe/Paris\n"
        "Reason: step 'Score <all>' failed\n"
        "Started 2026-11-22 02:00:00 CET, ended 2026-11-22 02:03:05 CET (3m 05s)\n"
        "Previous run: succeeded\n"
        "Open the run: https://himalia.example/projects/FRAUD/scenarios/daily-scoring/runs/42\n"
        "\n"
        "Steps\n"
        "  succeeded Check inputs (run_checks, 1.2s)\n"
        "  failed    Score <all> (notebook, 3m 01s): ZeroDivisionError: division by zero\n"
        "  skipped   Publish (notebook)\n"
        "\n"
        "Checks\n"
        "  ERROR   transactions / row count: 12 is below the minimum 1000\n"
        "  OK      transactions / fresh: updated 2h ago\n"
        "\n"
        "Variables\n"
        "  company = ACME\n"
        "  min_transactions = 1000\n"
        '  regions = ["eu", "us"]\n'
    )


def test_attachments_carry_the_report_the_log_and_the_dataset(smtp: Smtp) -> None:
    report = "<html><body><h1>Scores</h1>é</body></html>".encode()
    asked: list[tuple[str, int]] = []

    def dataset_csv(name: str, max_bytes: int) -> bytes:
        asked.append((name, max_bytes))
        return b"id,score\n1,0.5\n2,0.25\n"

    reporter = email_reporter(attach=EmailAttachments(report=True, log=True, dataset="scores", max_bytes=1000))
    deliver(reporter, make_summary(report_html=report, dataset_csv=dataset_csv), smtp.mailer(), "")

    message = received(smtp)
    parts = {str(part.get_filename()): part for part in message.iter_attachments()}
    assert sorted(parts) == ["report.html", "run.log", "scores.csv"]
    assert parts["report.html"].get_content_type() == "text/html"
    assert parts["report.html"].get_payload(decode=True) == report
    assert parts["run.log"].get_content_type() == "text/plain"
    assert text_of(parts["run.log"]) == make_summary().log
    assert parts["scores.csv"].get_content_type() == "text/csv"
    assert parts["scores.csv"].get_payload(decode=True) == b"id,score\n1,0.5\n2,0.25\n"
    assert asked == [("scores", 1000)]
    assert "left out" not in body_of(message)


def test_what_is_too_large_is_left_out_and_the_body_says_why(smtp: Smtp) -> None:
    def dataset_csv(name: str, max_bytes: int) -> bytes:
        raise ValueError(f"dataset '{name}' is larger than {max_bytes} bytes")

    reporter = email_reporter(
        body="Custom ${outcome}", attach=EmailAttachments(report=True, log=True, dataset="scores", max_bytes=20)
    )
    summary = make_summary(report_html=b"<html>" + b"x" * 100 + b"</html>", dataset_csv=dataset_csv)
    delivery = deliver(reporter, summary, smtp.mailer(), "")

    assert delivery.sent
    message = received(smtp)
    parts = {str(part.get_filename()): part for part in message.iter_attachments()}
    assert sorted(parts) == ["run.log"]
    assert text_of(parts["run.log"]) == "ne 1\nline 1\nthe end\n"  # the last 20 bytes
    assert body_of(message) == (
        "Custom failed\n\n"
        "report.html was left out: the report is larger than 20 bytes.\n"
        "run.log holds the last 20 bytes of the log only.\n"
        "scores.csv was left out: dataset 'scores' is larger than 20 bytes\n"
    )


def test_a_failing_export_leaves_the_dataset_out_without_details(smtp: Smtp) -> None:
    def dataset_csv(name: str, max_bytes: int) -> bytes:
        raise RuntimeError("connection postgresql://etl:hunter2@db/prod refused")

    reporter = email_reporter(body="${outcome}", attach=EmailAttachments(report=False, dataset="scores"))
    assert deliver(reporter, make_summary(dataset_csv=dataset_csv), smtp.mailer(), "").sent
    message = received(smtp)
    assert list(message.iter_attachments()) == []
    assert body_of(message) == "failed\n\nscores.csv was left out: the export failed (details in the server log).\n"


SAMPLE = {
    "condition": "known_country",
    "columns": ["id", "country", "note"],
    "rows": [[1, "FR", None], [2, "FR", "a,b"]],
}


def test_the_failing_rows_of_the_run_travel_as_one_csv_per_check(smtp: Smtp) -> None:
    def failing_rows() -> list[tuple[str, str, dict[str, Any]]]:
        return [("transactions", "Known countries", SAMPLE), ("transactions", "Big/amounts?", SAMPLE)]

    reporter = email_reporter(body="${outcome}", attach=EmailAttachments(report=False, failing_rows=True))
    assert deliver(reporter, make_summary(failing_rows=failing_rows), smtp.mailer(), "").sent
    message = received(smtp)
    parts = {str(part.get_filename()): part for part in message.iter_attachments()}
    assert sorted(parts) == [
        "failing-rows-transactions-Big_amounts_.csv",
        "failing-rows-transactions-Known_countries.csv",
    ]
    csv_text = text_of(parts["failing-rows-transactions-Known_countries.csv"])
    assert csv_text.splitlines() == ["id,country,note", "1,FR,", '2,FR,"a,b"']
    assert body_of(message) == "failed\n"


@pytest.mark.parametrize(
    ("failing_rows", "note"),
    [
        (None, "The failing rows were left out: this run cannot export them."),
        ("refused", "The failing rows were left out: You need export_datasets on FRAUD."),
        ("broken", "The failing rows were left out: reading them failed (details in the server log)."),
        ("large", "failing-rows-t-c.csv was left out: it is larger than 30 bytes."),
    ],
)
def test_failing_rows_that_cannot_be_sent_are_left_out_and_the_body_says_why(
    smtp: Smtp, failing_rows: str | None, note: str
) -> None:
    def read() -> list[tuple[str, str, dict[str, Any]]]:
        if failing_rows == "refused":
            raise Forbidden("You need export_datasets on FRAUD.")
        if failing_rows == "broken":
            raise RuntimeError("postgresql://etl:hunter2@db/prod refused")
        return [("t", "c", SAMPLE)]

    reporter = email_reporter(body="${outcome}", attach=EmailAttachments(report=False, failing_rows=True, max_bytes=30))
    summary = make_summary(failing_rows=None if failing_rows is None else read)
    assert deliver(reporter, summary, smtp.mailer(), "").sent
    message = received(smtp)
    assert list(message.iter_attachments()) == []
    assert body_of(message) == f"failed\n\n{note}\n" and "hunter2" not in body_of(message)


def test_login_when_a_username_is_set(smtp: Smtp) -> None:
    delivery = deliver(email_reporter(), make_summary(), smtp.mailer(username=LOGIN, password=PASSWORD), "")

    assert delivery.sent
    assert smtp.mailbox.logins == [LOGIN]
    assert smtp.mailbox.authenticated == [True]


def assert_no_password(text: str | None) -> None:
    assert text is not None
    plain = base64.b64encode(f"\0{LOGIN}\0{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, base64.b64encode(PASSWORD.encode()).decode(), plain):
        assert secret not in text


def test_a_refused_login_is_final_and_its_error_holds_no_password(smtp: Smtp) -> None:
    slept: list[float] = []
    mailer = smtp.mailer(username=LOGIN, password=PASSWORD + "-wrong")
    delivery = deliver(email_reporter(), make_summary(), mailer, "", sleep=slept.append)

    assert (delivery.sent, delivery.attempts, slept) == (False, 1, [])
    assert delivery.error is not None and delivery.error.startswith("login refused 535")
    assert_no_password(delivery.error)
    assert smtp.mailbox.messages == []


def test_temporary_smtp_refusals_are_retried_with_exponential_backoff(smtp: Smtp) -> None:
    smtp.mailbox.data_replies += ["451 4.3.0 Try again later", "421 4.7.0 Busy"]
    slept: list[float] = []
    delivery = deliver(email_reporter(), make_summary(), smtp.mailer(), "", sleep=slept.append)

    assert (delivery.sent, delivery.attempts, delivery.error) == (True, 3, None)
    assert slept == [2.0, 4.0]
    assert len(smtp.mailbox.messages) == 1


def test_a_persistent_temporary_refusal_gives_up_after_the_attempts(smtp: Smtp) -> None:
    smtp.mailbox.data_replies += ["451 4.3.0 Try again later"] * 4
    slept: list[float] = []
    delivery = deliver(email_reporter(), make_summary(), smtp.mailer(), "", attempts=4, backoff=0.5, sleep=slept.append)

    assert (delivery.sent, delivery.attempts) == (False, 4)
    assert delivery.error == "SMTP server answered 451 4.3.0 Try again later"
    assert slept == [0.5, 1.0, 2.0]


def test_a_permanent_smtp_refusal_is_not_retried(smtp: Smtp) -> None:
    smtp.mailbox.data_replies.append("550 5.7.1 Message rejected")
    slept: list[float] = []
    delivery = deliver(email_reporter(), make_summary(), smtp.mailer(), "", sleep=slept.append)

    assert (delivery.sent, delivery.attempts, slept) == (False, 1, [])
    assert delivery.error == "SMTP server answered 550 5.7.1 Message rejected"


def test_an_unreachable_server_is_retried_then_reported_without_the_password() -> None:
    port = free_port()
    slept: list[float] = []
    mailer = Mailer(host="127.0.0.1", port=port, username=LOGIN, password=PASSWORD, timeout=2.0)
    delivery = deliver(email_reporter(), make_summary(), mailer, "", sleep=slept.append)

    assert (delivery.sent, delivery.attempts, slept) == (False, 3, [2.0, 4.0])
    assert delivery.error is not None and delivery.error.startswith(f"could not reach 127.0.0.1:{port}: ")
    assert "refused" in delivery.error.lower()
    assert_no_password(delivery.error)


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1, and a server context using it."""
    return self_signed(tmp_path_factory.mktemp("tls"), "127.0.0.1", x509.IPAddress(ipaddress.ip_address("127.0.0.1")))


@pytest.fixture(scope="module")
def tls_servers(certificate: tuple[Path, ssl.SSLContext]) -> Iterator[dict[str, Smtp]]:
    """One server requiring STARTTLS then a login, one speaking TLS from the start."""
    _, context = certificate
    servers: dict[str, Smtp] = {}
    controllers = []
    variants: list[tuple[str, dict[str, Any]]] = [
        ("starttls", {"tls_context": context, "require_starttls": True, "auth_required": True}),
        ("ssl", {"ssl_context": context, "auth_require_tls": False}),  # aiosmtpd only counts STARTTLS as TLS
    ]
    for security, options in variants:
        mailbox, port = Mailbox(), free_port()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, authenticator=mailbox.authenticate, **options)
        controllers.append(start(controller))
        servers[security] = Smtp(mailbox, port)
    yield servers
    for controller in controllers:
        controller.stop()


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_with_a_private_ca_and_login(
    security: str, tls_servers: dict[str, Smtp], certificate: tuple[Path, ssl.SSLContext]
) -> None:
    server = tls_servers[security]
    server.mailbox.reset()
    mailer = server.mailer(security=security, ca_file=str(certificate[0]), username=LOGIN, password=PASSWORD)
    delivery = deliver(email_reporter(), make_summary(), mailer, "")

    assert (delivery.sent, delivery.error) == (True, None)
    assert server.mailbox.logins == [LOGIN]
    assert len(server.mailbox.messages) == 1


def test_an_untrusted_certificate_is_final(tls_servers: dict[str, Smtp]) -> None:
    slept: list[float] = []
    mailer = tls_servers["ssl"].mailer(security="ssl", username=LOGIN, password=PASSWORD)
    delivery = deliver(email_reporter(), make_summary(), mailer, "", sleep=slept.append)

    assert (delivery.sent, delivery.attempts, slept) == (False, 1, [])
    assert delivery.error is not None and "not trusted" in delivery.error
    assert_no_password(delivery.error)


# -- when to send ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "outcome", "previous", "expected"),
    [
        ("always", "succeeded", "succeeded", True),
        ("always", "failed", None, True),
        ("always", "skipped", "failed", True),
        ("failure", "failed", "failed", True),
        ("failure", "aborted", None, True),
        ("failure", "warning", None, False),
        ("failure", "succeeded", "failed", False),
        ("failure", "skipped", None, False),
        ("warning_or_failure", "warning", None, True),
        ("warning_or_failure", "failed", None, True),
        ("warning_or_failure", "aborted", None, True),
        ("warning_or_failure", "succeeded", "failed", False),
        ("success", "succeeded", "succeeded", True),
        ("success", "warning", None, False),
        ("success", "failed", None, False),
        ("outcome_change", "failed", None, True),
        ("outcome_change", "failed", "succeeded", True),
        ("outcome_change", "succeeded", "failed", True),
        ("outcome_change", "warning", "succeeded", True),
        ("outcome_change", "failed", "failed", False),
        ("outcome_change", "succeeded", "succeeded", False),
    ],
)
def test_should_send(when: Any, outcome: str, previous: str | None, expected: bool) -> None:
    assert should_send(when, outcome, previous) is expected


def test_report_all_skips_reporters_whose_condition_does_not_hold(smtp: Smtp) -> None:
    reporters: list[EmailReporter | WebhookReporter] = [
        email_reporter(when="failure"),
        email_reporter(to=["boss@example.com"], when="success"),
        WebhookReporter(type="webhook", url="https://hooks.example/x?token=abc", when="outcome_change"),
    ]
    summary = make_summary(outcome="succeeded", previous_outcome="succeeded")
    deliveries = report_all(reporters, summary, smtp.mailer(), "", sleep=lambda _: None)

    assert deliveries == [
        Delivery("email to ops@example.com, lead@example.com", False, 0, skipped_reason="only on failure"),
        Delivery("email to boss@example.com", True, 1),
        Delivery(
            "webhook https://hooks.example/x/…",
            False,
            0,
            skipped_reason="only when the outcome changes (still succeeded)",
        ),
    ]
    assert [str(envelope.rcpt_tos) for envelope in smtp.mailbox.envelopes] == ["['boss@example.com']"]


# -- webhooks --------------------------------------------------------------------------------------


@dataclass
class Hook:
    """Records POSTs; answers the scripted statuses first, then 200."""

    port: int
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def json(self, index: int = -1) -> Any:
        return json.loads(self.requests[index][2])


@pytest.fixture(scope="module")
def hook_server() -> Iterator[Hook]:
    hook = Hook(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hook.requests.append((self.path, dict(self.headers.items()), body))
            status = hook.statuses.pop(0) if hook.statuses else 200
            answer = b"ok" if status == 200 else f"error {self.path}".encode()
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "7")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield hook
    server.shutdown()
    server.server_close()


@pytest.fixture
def hook(hook_server: Hook) -> Hook:
    hook_server.requests.clear()
    hook_server.statuses.clear()
    return hook_server


def webhook(url: str, format: str = "json") -> WebhookReporter:
    return WebhookReporter.model_validate({"type": "webhook", "url": url, "format": format})


def test_server_errors_are_retried_with_backoff_then_succeed(hook: Hook) -> None:
    hook.statuses += [500, 503]
    slept: list[float] = []
    delivery = deliver(
        webhook(hook.url()), make_summary(), Mailer(), WEBHOOK_KEY, sleep=slept.append, webhooks=LOCAL_RECEIVERS
    )

    assert delivery == Delivery(f"webhook http://127.0.0.1:{hook.port}/hook", sent=True, attempts=3)
    assert slept == [2.0, 4.0]
    assert len(hook.requests) == 3


def test_persistent_failures_are_reported_without_the_url_secrets(hook: Hook) -> None:
    hook.statuses += [502] * 3
    url = hook.url(f"/services/T000/B000/PATHSECRET?{QUERY_SECRET}")
    delivery = deliver(
        webhook(url, "slack"), make_summary(), Mailer(), "", sleep=lambda _: None, webhooks=LOCAL_RECEIVERS
    )

    assert (delivery.sent, delivery.attempts) == (False, 3)
    assert delivery.reporter == f"webhook http://127.0.0.1:{hook.port}/services/…"
    assert delivery.error is not None and delivery.error.startswith("HTTP 502 Bad Gateway")
    assert "xoxb" not in delivery.error and "PATHSECRET" not in delivery.error  # the receiver echoed the path
    assert hook.requests[0][0] == f"/services/T000/B000/PATHSECRET?{QUERY_SECRET}"


def test_client_errors_are_final_but_408_and_429_are_retried(hook: Hook) -> None:
    slept: list[float] = []
    hook.statuses.append(404)
    delivery = deliver(webhook(hook.url()), make_summary(), Mailer(), "", sleep=slept.append, webhooks=LOCAL_RECEIVERS)
    assert (delivery.sent, delivery.attempts, slept) == (False, 1, [])
    assert delivery.error == "HTTP 404 Not Found"  # the status only, never the receiver's reply

    hook.statuses += [429, 408]
    delivery = deliver(webhook(hook.url()), make_summary(), Mailer(), "", sleep=slept.append, webhooks=LOCAL_RECEIVERS)
    assert (delivery.sent, delivery.attempts) == (True, 3)
    assert slept == [7.0, 4.0]  # Retry-After: 7 outlasts the first backoff


def test_an_unreachable_webhook_is_retried_and_its_error_holds_no_query() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/PATHSECRET?{QUERY_SECRET}"
    slept: list[float] = []
    delivery = deliver(
        webhook(url),
        make_summary(),
        Mailer(),
        WEBHOOK_KEY,
        sleep=slept.append,
        webhook_timeout=2,
        webhooks=LOCAL_RECEIVERS,
    )

    assert (delivery.sent, delivery.attempts, slept) == (False, 3, [2.0, 4.0])
    assert delivery.error is not None and delivery.error.startswith("ConnectionError: ")
    assert "xoxb" not in delivery.error and "PATHSECRET" not in delivery.error
    assert delivery.reporter == f"webhook http://127.0.0.1:{port}/hooks/…"


def test_json_webhooks_are_signed_over_timestamp_and_body(hook: Hook) -> None:
    summary = make_summary(log="x" * 10_000 + "last words", report_html=b"<html>big</html>")
    assert deliver(webhook(hook.url()), summary, Mailer(), WEBHOOK_KEY, webhooks=LOCAL_RECEIVERS).sent

    _, headers, body = hook.requests[0]
    timestamp = headers[TIMESTAMP_HEADER]
    expected = hmac.new(WEBHOOK_KEY.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert headers["Content-Type"].startswith("application/json")
    assert verify_signature(WEBHOOK_KEY, timestamp, body, headers[SIGNATURE_HEADER])
    assert not verify_signature(WEBHOOK_KEY, timestamp, body + b" ", headers[SIGNATURE_HEADER])
    assert not verify_signature("other", timestamp, body, headers[SIGNATURE_HEADER])
    replayed_later = int(timestamp) + 3600
    assert not verify_signature(WEBHOOK_KEY, timestamp, body, headers[SIGNATURE_HEADER], now=replayed_later)

    payload = json.loads(body)
    assert {key: payload[key] for key in ("project", "scenario_id", "run_id", "outcome", "previous_outcome")} == {
        "project": "FRAUD",
        "scenario_id": "daily-scoring",
        "run_id": 42,
        "outcome": "failed",
        "previous_outcome": "succeeded",
    }
    assert payload["seconds"] == 185.0
    assert payload["started_at"] == "2026-11-22T02:00:00+01:00"
    assert payload["steps"][1] == {
        "name": "Score <all>",
        "type": "notebook",
        "state": "failed",
        "message": "ZeroDivisionError: division by zero",
        "seconds": 181.0,
    }
    assert payload["checks"][0]["outcome"] == "ERROR"
    assert payload["variables"] == {"company": "ACME", "min_transactions": 1000, "regions": ["eu", "us"]}
    assert len(payload["log_tail"]) == 4000 and payload["log_tail"].endswith("last words")
    assert "report_html" not in payload and b"<html>" not in body


def test_json_webhooks_without_a_key_are_unsigned(hook: Hook) -> None:
    assert deliver(webhook(hook.url()), make_summary(), Mailer(), "", webhooks=LOCAL_RECEIVERS).sent
    headers = hook.requests[0][1]
    assert TIMESTAMP_HEADER in headers and SIGNATURE_HEADER not in headers


def test_slack_payload(hook: Hook) -> None:
    assert deliver(webhook(hook.url(), "slack"), make_summary(), Mailer(), WEBHOOK_KEY, webhooks=LOCAL_RECEIVERS).sent
    payload = hook.json()
    assert payload == slack_payload(make_summary())
    assert SIGNATURE_HEADER not in hook.requests[0][1]

    assert payload["text"] == "Daily fraud scoring: failed"
    header, steps, checks = payload["blocks"]
    assert header["type"] == "section" and header["text"]["type"] == "mrkdwn"
    assert header["text"]["text"].splitlines() == [
        "*Daily fraud scoring* failed",
        "Project FRAUD, run #42, cron 2026-11-22 02:00 Europe/Paris",
        "Reason: step 'Score &lt;all&gt;' failed",
        "Duration: 3m 05s",
        "<https://himalia.example/projects/FRAUD/scenarios/daily-scoring/runs/42|Open the run>",
    ]
    assert steps["type"] == "section"
    assert [field["type"] for field in steps["fields"]] == ["mrkdwn"] * 3
    assert steps["fields"][1]["text"] == "*Score &lt;all&gt;*\nfailed (3m 01s)\nZeroDivisionError: division by zero"
    assert checks["text"]["text"] == "*Checks*\nERROR   transactions / row count: 12 is below the minimum 1000"


def test_slack_sections_hold_at_most_ten_fields() -> None:
    steps = [StepSummary(f"step {i}", "sql", "succeeded") for i in range(45)]
    blocks = slack_payload(make_summary(steps=steps, checks=[]))["blocks"]
    assert [len(block.get("fields", [])) for block in blocks] == [0, 10, 10, 10, 10, 0]
    assert blocks[-1]["type"] == "context"


def test_teams_payload(hook: Hook) -> None:
    assert deliver(webhook(hook.url(), "teams"), make_summary(), Mailer(), "", webhooks=LOCAL_RECEIVERS).sent
    card = hook.json()
    assert {key: card[key] for key in ("@type", "@context", "summary", "themeColor", "title")} == {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": "Daily fraud scoring: failed",
        "themeColor": "E01E5A",
        "title": "Daily fraud scoring: failed",
    }
    (section,) = card["sections"]
    facts = {fact["name"]: fact["value"] for fact in section["facts"]}
    assert facts["Project"] == "FRAUD" and facts["Run"] == "#42" and facts["Duration"] == "3m 05s"
    assert facts["Score <all>"] == "failed: ZeroDivisionError: division by zero"
    assert facts["Publish"] == "skipped"
    assert facts["transactions / row count"] == "ERROR: 12 is below the minimum 1000"
    assert "transactions / fresh" not in facts
    assert card["potentialAction"][0]["targets"][0]["uri"].endswith("/runs/42")
    assert teams_payload(make_summary(outcome="succeeded"))["themeColor"] == "2EB67D"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/services/…"),
        ("https://user:pw@example.com:8443/hook?token=abc#x", "https://example.com:8443/hook/…"),
        ("http://example.com", "http://example.com"),
        ("http://[fd00::1]:8080/hook/secret", "http://[fd00::1]:8080/hook/…"),
        ("http://example.com/hook", "http://example.com/hook"),
        ("https://example.com/0123456789abcdef0123456789", "https://example.com/0123456789abcdef012…"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
