"""Scenario reporters: tell people how a run ended, by email (SMTP) or webhook (Slack, Teams, JSON).

The run engine fills a ``RunSummary`` when a run finishes and calls ``report_all`` with the
scenario's reporters. Each reporter's ``when`` decides whether it sends (``should_send``);
subjects and bodies are templates where ``${name}`` is replaced by a run value or a run variable
(an unknown name stays as written, ``$${`` writes a literal ``${``). Delivery retries transient
failures with exponential backoff and never raises: a reporter that cannot deliver must not
change the outcome of the run, so the result is a ``Delivery`` saying what happened. Error texts
never hold the SMTP password nor a webhook URL's path or query string, where Slack and Teams put
their secrets, nor anything the receiver answered besides its status: a reply may be a page of
an internal service, and deliveries are shown to everyone who reads the run.

Webhooks go only to public addresses unless ``c.WebhookSettings.allowed_destinations`` names a
network or host (see ``outbound``): the address is checked after resolution, the connection
goes to that address, and redirects are not followed.

Generic JSON webhooks are signed so that receivers can trust them: the body is posted with
``X-Himalia-Timestamp: <unix seconds>`` and, when a signing key is configured,
``X-Himalia-Signature: sha256=<hex>``, the HMAC-SHA256 under the key of
``<timestamp> "." <raw body>``. Signing the timestamp with the body lets receivers reject
replays: check the signature (``verify_signature`` does it), then refuse timestamps older than
a few minutes.

Deadline alerts (``AlertSummary``: a scenario late for its ``sla:``, a run over its maximum
duration, fires that did not happen) go through the same reporters, to those with ``on_late`` or
``on_missed``, with the same retries; their subject and body are fixed (``alert_body``).
"""

import base64
import csv
import hashlib
import hmac
import io
import json
import logging
import os
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests
from pydantic import ValidationError
from traitlets import Enum, Float, Int, List, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

from himalia.core.config import environment_default
from himalia.core.errors import HimaliaError
from himalia.core.outbound import DestinationPolicy, DestinationRefused, DestinationUnresolved, post
from himalia.wire.definitions import EmailAttachments, EmailReporter, SendWhen, WebhookReporter
from himalia.wire.scenarios import RunState

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Himalia-Signature"
TIMESTAMP_HEADER = "X-Himalia-Timestamp"
#: How much of the run's log a JSON webhook carries (its end, where failures are).
LOG_TAIL_CHARS = 4000
FAILURES = frozenset({RunState.FAILED, RunState.ABORTED})
_REFERENCE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
#: Why a reporter did not send, by its ``when``.
_ONLY = {
    "failure": "only on failure",
    "warning_or_failure": "only on warning or failure",
    "success": "only on success",
    "outcome_change": "only when the outcome changes",
}
#: Slack and Teams colours by outcome (Teams wants hex without '#').
_COLOURS = {
    RunState.SUCCEEDED: "2EB67D",
    RunState.WARNING: "ECB22E",
    RunState.FAILED: "E01E5A",
    RunState.ABORTED: "E01E5A",
}


# -- what the run engine hands over ----------------------------------------------------------------


@dataclass(frozen=True)
class StepSummary:
    name: str
    type: str
    state: str  # succeeded, warning, failed, skipped, aborted
    message: str = ""
    seconds: float | None = None


@dataclass(frozen=True)
class CheckSummary:
    dataset: str
    check: str
    outcome: str  # OK, WARNING, ERROR, EMPTY
    message: str


@dataclass
class RunSummary:
    project: str
    scenario_id: str
    scenario_name: str
    run_id: int
    outcome: RunState
    previous_outcome: RunState | None  # outcome of the scenario's previous finished run, for "outcome_change"
    trigger: str  # e.g. "manual by alice", "cron 2026-11-22 02:00 Europe/Paris"
    started_at: datetime | None
    ended_at: datetime | None
    steps: list[StepSummary]
    checks: list[CheckSummary]
    variables: dict[str, Any]
    message: str = ""  # the run's failure reason, if any
    url: str | None = None  # link to the run in the UI/API, if known
    report_html: bytes | None = None  # HTML report of the last notebook step
    log: str = ""
    #: (dataset name, max_bytes) -> CSV bytes; raises ValueError("... larger than N bytes") when too big.
    dataset_csv: Callable[[str, int], bytes] | None = None
    #: The failing rows the run's checks kept: [(dataset, check, {"condition", "columns", "rows"})].
    failing_rows: Callable[[], list[tuple[str, str, dict[str, Any]]]] | None = None
    run_as_email: str = ""  # the run-as user's profile email, whom a failure notice goes to

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        try:
            return (self.ended_at - self.started_at).total_seconds()
        except TypeError:  # one naive, one aware: no honest duration
            return None


@dataclass
class Delivery:
    """What became of one reporter: sent, skipped by its ``when``, or failed after ``attempts``."""

    reporter: str  # "email to a@x, b@y" or "webhook https://host/first-segment/…"
    sent: bool
    attempts: int
    error: str | None = None
    skipped_reason: str | None = None


def should_send(when: SendWhen, outcome: RunState, previous_outcome: RunState | None) -> bool:
    """Whether a reporter with this ``when`` sends for a run ending in ``outcome``.

    "failure" covers failed and aborted runs; "success" only runs that succeeded without warning;
    "outcome_change" sends on a scenario's first run and whenever the outcome differs from the
    previous run's, so a failure is reported once rather than every night until fixed.
    """
    if when == "always":
        return True
    if when == "failure":
        return outcome in FAILURES
    if when == "warning_or_failure":
        return outcome in FAILURES or outcome == RunState.WARNING
    if when == "success":
        return outcome == RunState.SUCCEEDED
    if when == "outcome_change":
        return previous_outcome is None or previous_outcome != outcome
    raise ValueError(f"'{when}' is not a reporter condition")


# -- text ------------------------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def _time(moment: datetime | None) -> str:
    if moment is None:
        return ""
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text} {moment.tzname()}" if moment.tzinfo else text


def _text(value: Any) -> str:
    """A value as people read it: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def step_lines(summary: RunSummary) -> list[str]:
    lines = []
    for step in summary.steps:
        details = ", ".join(part for part in (step.type, _duration(step.seconds)) if part)
        line = f"{step.state:<9} {step.name} ({details})"
        lines.append(f"{line}: {step.message}" if step.message else line)
    return lines


def check_lines(summary: RunSummary) -> list[str]:
    return [
        f"{check.outcome:<7} {check.dataset} / {check.check}" + (f": {check.message}" if check.message else "")
        for check in summary.checks
    ]


def template_values(summary: RunSummary) -> dict[str, Any]:
    """What ``${name}`` may refer to: the run's variables, then run values (which win, so that a
    variable named ``outcome`` cannot make a failed run read as succeeded)."""
    return {
        **summary.variables,
        "scenarioName": summary.scenario_name,
        "scenarioId": summary.scenario_id,
        "outcome": summary.outcome,
        "previousOutcome": summary.previous_outcome or "",
        "project": summary.project,
        "runId": str(summary.run_id),
        "trigger": summary.trigger,
        "message": summary.message,
        "startedAt": _time(summary.started_at),
        "endedAt": _time(summary.ended_at),
        "duration": _duration(summary.seconds),
        "steps": "\n".join(step_lines(summary)) or "(none)",
        "checks": "\n".join(check_lines(summary)) or "(none)",
        "url": summary.url or "",
    }


def render(template: str, values: Mapping[str, Any]) -> str:
    """Replace ``${name}`` by its value; unknown names stay as written, since a typo in a
    reporter must not stop the report, and the reader sees which reference did not resolve."""

    def substitute(match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped or name not in values:
            return "${" + name + "}"
        return _text(values[name])

    return _REFERENCE.sub(substitute, template)


def default_body(summary: RunSummary) -> str:
    """The email body when the reporter has none: enough to act on without opening the platform."""
    lines = [f"{summary.scenario_name} {summary.outcome}."]
    lines.append(f"Project {summary.project}, run #{summary.run_id}, {summary.trigger}")
    if summary.message:
        lines.append(f"Reason: {summary.message}")
    if summary.started_at or summary.ended_at:
        times = ", ".join(
            f"{label} {_time(moment)}"
            for label, moment in (("started", summary.started_at), ("ended", summary.ended_at))
            if moment
        )
        duration = _duration(summary.seconds)
        lines.append(times[0].upper() + times[1:] + (f" ({duration})" if duration else ""))
    if summary.previous_outcome:
        lines.append(f"Previous run: {summary.previous_outcome}")
    if summary.url:
        lines.append(f"Open the run: {summary.url}")
    for title, items in (
        ("Steps", step_lines(summary)),
        ("Checks", check_lines(summary)),
        ("Variables", [f"{name} = {_text(value)}" for name, value in sorted(summary.variables.items())]),
    ):
        if items:
            lines += ["", title, *(f"  {item}" for item in items)]
    return "\n".join(lines) + "\n"


# -- email -----------------------------------------------------------------------------------------


class Mailer(LoggingConfigurable):
    """The SMTP server reports go through (configured as ``c.Mailer.host`` and so on)."""

    host = Unicode(config=True, help="SMTP server host name. Defaults to $HIMALIA_SMTP_HOST, else localhost.")
    port = Int(config=True, help="SMTP server port: usually 25, 587 with starttls, 465 with ssl ($HIMALIA_SMTP_PORT).")
    security = Enum(
        ["none", "starttls", "ssl"],
        default_value="none",
        config=True,
        help="none (plain SMTP), starttls (upgrade after connecting) or ssl (TLS from the start).",
    )
    ca_file = Unicode(
        "",
        config=True,
        help="CA bundle that verifies the server's certificate, for relays with a private CA; empty uses the system's.",
    )
    username = Unicode(config=True, help="Log in with this name ($HIMALIA_SMTP_USER); empty sends without logging in.")
    password = Unicode(
        config=True, help="Password of `username` ($HIMALIA_SMTP_PASSWORD). Never logged nor reported in errors."
    )
    sender = Unicode(config=True, help="From address of the emails ($HIMALIA_SMTP_SENDER, else himalia@localhost).")

    _default_host = environment_default("host", "HIMALIA_SMTP_HOST", "localhost")
    _default_port = environment_default("port", "HIMALIA_SMTP_PORT", 25, int)
    _default_username = environment_default("username", "HIMALIA_SMTP_USER", "")
    _default_password = environment_default("password", "HIMALIA_SMTP_PASSWORD", "")
    _default_sender = environment_default("sender", "HIMALIA_SMTP_SENDER", "himalia@localhost")

    timeout = Float(30.0, config=True, help="Seconds to wait for the server at each step.")

    def configured(self) -> bool:
        """Whether an operator named an SMTP server (configuration or environment): the default
        localhost:25 is a guess, which notices nobody asked for must not retry against."""
        section = self.config.get("Mailer", {})
        named = any(name in section for name in ("host", "port"))
        return named or any(os.environ.get(name) for name in ("HIMALIA_SMTP_HOST", "HIMALIA_SMTP_PORT"))

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file or None)

    def send(self, message: EmailMessage) -> None:
        """Send one message; raises smtplib's and socket errors as they are (``deliver`` sorts
        them into retried and final)."""
        client: smtplib.SMTP
        if self.security == "ssl":
            client = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls())
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.security == "starttls":
                client.starttls(context=self._tls())
            if self.username:
                client.login(self.username, self.password)
            refused = client.send_message(message)
            if refused:  # some recipients were accepted: the message went, but not to everybody
                self.log.warning("The SMTP server refused recipients %s", ", ".join(sorted(refused)))

    def secrets(self) -> list[str]:
        """The password as it may appear in a server's echo: plain, or base64 in AUTH PLAIN/LOGIN."""
        if not self.password:
            return []
        plain = f"\0{self.username}\0{self.password}".encode()
        return [
            self.password,
            base64.b64encode(self.password.encode()).decode(),
            base64.b64encode(plain).decode(),
        ]


def _attach_failing_rows(
    summary: RunSummary, limit: int, attachments: list[tuple[bytes | str, str, str, str]]
) -> list[str]:
    """One CSV per failed check that kept failing rows; the notes say what was left out and why."""
    if summary.failing_rows is None:
        return ["The failing rows were left out: this run cannot export them."]
    try:
        samples = summary.failing_rows()
    except HimaliaError as error:
        return [f"The failing rows were left out: {error.message}"]
    except Exception:
        log.exception("Could not read the failing rows of run %s", summary.run_id)
        return ["The failing rows were left out: reading them failed (details in the server log)."]
    notes = []
    for dataset, check, sample in samples:
        name = "failing-rows-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{dataset}-{check}") + ".csv"
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(sample["columns"])
        writer.writerows(["" if value is None else value for value in row] for row in sample["rows"])
        if len(out.getvalue().encode()) > limit:
            notes.append(f"{name} was left out: it is larger than {limit} bytes.")
        else:
            attachments.append((out.getvalue(), "text", "csv", name))
    return notes


def build_email(reporter: EmailReporter, summary: RunSummary, sender: str) -> EmailMessage:
    """The email of a run, with the attachments the reporter asks for.

    An attachment that cannot be made (a dataset larger than ``max_bytes``, a report too large)
    is left out and the body says why: the outcome is worth sending without it.
    """
    values = template_values(summary)
    notes: list[str] = []
    attachments: list[tuple[bytes | str, str, str, str]] = []  # content, maintype, subtype, filename
    limit = reporter.attach.max_bytes
    if reporter.attach.report and summary.report_html is not None:
        if len(summary.report_html) > limit:
            notes.append(f"report.html was left out: the report is larger than {limit} bytes.")
        else:
            attachments.append((summary.report_html, "text", "html", "report.html"))
    if reporter.attach.log:
        data = summary.log.encode()
        if len(data) > limit:
            notes.append(f"run.log holds the last {limit} bytes of the log only.")
            data = data[-limit:]
        attachments.append((data.decode(errors="ignore"), "text", "plain", "run.log"))
    if reporter.attach.dataset:
        name = reporter.attach.dataset
        if summary.dataset_csv is None:
            notes.append(f"{name}.csv was left out: this run cannot export datasets.")
        else:
            try:
                attachments.append((summary.dataset_csv(name, limit), "text", "csv", f"{name}.csv"))
            except ValueError as error:
                notes.append(f"{name}.csv was left out: {error}")
            except Exception:
                log.exception("Could not export dataset %s for a report of run %s", name, summary.run_id)
                notes.append(f"{name}.csv was left out: the export failed (details in the server log).")

    if reporter.attach.failing_rows:
        notes += _attach_failing_rows(summary, limit, attachments)

    body = default_body(summary) if reporter.body is None else render(reporter.body, values)
    if notes:
        body = body.rstrip("\n") + "\n\n" + "\n".join(notes) + "\n"
    message = EmailMessage()
    # Headers cannot hold line breaks (variables might): fold the subject onto one line.
    message["Subject"] = _clip(" ".join(render(reporter.subject, values).split()), 250)
    message["From"] = sender
    message["To"] = ", ".join(reporter.to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or "localhost")
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to the robot
    message["X-Himalia-Run"] = f"{summary.project}/{summary.scenario_id}/{summary.run_id}"
    message.set_content(body)
    for content, maintype, subtype, filename in attachments:
        if isinstance(content, str):
            message.add_attachment(content, subtype=subtype, filename=filename)
        else:
            message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return message


# -- webhooks --------------------------------------------------------------------------------------


class WebhookSettings(LoggingConfigurable):
    """Where and how webhooks are posted (``c.WebhookSettings.allowed_destinations`` and so on).

    Their signing key is ``c.ControlPlane.webhook_signing_key`` (``$HIMALIA_WEBHOOK_KEY``).
    """

    timeout = Float(10.0, config=True, help="Seconds to wait for a webhook's answer.")
    allowed_destinations = List(
        Unicode(),
        config=True,
        help="""Networks and host names webhooks may reach although they are not public, e.g.
        ``["127.0.0.1", "10.20.0.0/16", "hooks.corp.example", "*.corp.example"]``.

        Without an entry, webhooks refuse loopback, private, link-local, unique-local, shared,
        multicast, reserved and unspecified addresses, checked after DNS resolution (every address
        a name resolves to), so that a scenario author cannot make the control plane post into
        the operator's network. A named host may resolve to any address. Cloud metadata addresses
        (169.254.169.254, fd00:ec2::254, …) are opened only by naming the address itself, never
        by a network around it.""",
    )
    proxy = Unicode(
        "",
        config=True,
        help="""HTTP(S) proxy webhooks go through (``http://proxy.corp:3128``); empty connects
        directly. The environment's $HTTPS_PROXY is not used: the address checked is the address
        reached.""",
    )
    ca_file = Unicode(
        "",
        config=True,
        help="CA bundle that verifies webhook receivers' certificates, for a private CA; empty uses certifi's.",
    )

    @validate("allowed_destinations")
    def _valid_destinations(self, proposal: Any) -> list[str]:
        try:
            DestinationPolicy(proposal.value)
        except ValueError as error:
            raise TraitError(f"WebhookSettings.allowed_destinations: {error}") from None
        return list(proposal.value)

    def policy(self) -> DestinationPolicy:
        return DestinationPolicy(self.allowed_destinations)


def sign(key: str, timestamp: str, body: bytes) -> str:
    """The ``X-Himalia-Signature`` value of a body posted at ``timestamp``."""
    digest = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    key: str, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300, now: float | None = None
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent (no replay)."""
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        return False
    return abs(age) <= tolerance and hmac.compare_digest(sign(key, timestamp, body), signature)


def json_payload(summary: RunSummary) -> dict[str, Any]:
    """The generic webhook's body: the summary without report, datasets, and only the log's tail."""
    return {
        "event": "scenario_run_finished",
        "project": summary.project,
        "scenario_id": summary.scenario_id,
        "scenario_name": summary.scenario_name,
        "run_id": summary.run_id,
        "outcome": summary.outcome,
        "previous_outcome": summary.previous_outcome,
        "trigger": summary.trigger,
        "started_at": summary.started_at.isoformat() if summary.started_at else None,
        "ended_at": summary.ended_at.isoformat() if summary.ended_at else None,
        "seconds": summary.seconds,
        "message": summary.message,
        "url": summary.url,
        "steps": [
            {"name": s.name, "type": s.type, "state": s.state, "message": s.message, "seconds": s.seconds}
            for s in summary.steps
        ],
        "checks": [
            {"dataset": c.dataset, "check": c.check, "outcome": c.outcome, "message": c.message} for c in summary.checks
        ],
        "variables": summary.variables,
        "log_tail": summary.log[-LOG_TAIL_CHARS:],
    }


def _mrkdwn(text: str) -> str:
    """Slack's escaping: only &, < and > are special."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _headline(summary: RunSummary) -> str:
    return f"{summary.scenario_name}: {summary.outcome}"


def slack_payload(summary: RunSummary) -> dict[str, Any]:
    """A Slack incoming-webhook message: plain ``text`` for notifications, ``blocks`` for the
    channel. Slack caps sections at 10 fields and messages at 50 blocks, hence the limits."""
    lines = [f"*{_mrkdwn(summary.scenario_name)}* {summary.outcome}"]
    lines.append(_mrkdwn(f"Project {summary.project}, run #{summary.run_id}, {summary.trigger}"))
    if summary.message:
        lines.append(_mrkdwn(f"Reason: {_clip(summary.message, 1000)}"))
    if duration := _duration(summary.seconds):
        lines.append(f"Duration: {duration}")
    if summary.url:
        lines.append(f"<{summary.url}|Open the run>")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]
    fields = [
        {
            "type": "mrkdwn",
            "text": _clip(
                f"*{_mrkdwn(step.name)}*\n{step.state}"
                + (f" ({_duration(step.seconds)})" if step.seconds is not None else "")
                + (f"\n{_mrkdwn(step.message)}" if step.message else ""),
                500,
            ),
        }
        for step in summary.steps[:40]
    ]
    blocks += [{"type": "section", "fields": fields[i : i + 10]} for i in range(0, len(fields), 10)]
    if len(summary.steps) > 40:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "More steps left out."}]})
    problems = [line for line, check in zip(check_lines(summary), summary.checks, strict=True) if check.outcome != "OK"]
    if summary.checks:
        text = "\n".join(_mrkdwn(line) for line in problems) if problems else f"All {len(summary.checks)} checks OK"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Checks*\n{text}", 3000)}})
    return {"text": _headline(summary), "blocks": blocks}


def teams_payload(summary: RunSummary) -> dict[str, Any]:
    """A Microsoft Teams (Office 365 connector) MessageCard."""
    facts = [
        {"name": "Project", "value": summary.project},
        {"name": "Run", "value": f"#{summary.run_id}"},
        {"name": "Trigger", "value": summary.trigger},
    ]
    if duration := _duration(summary.seconds):
        facts.append({"name": "Duration", "value": duration})
    if summary.message:
        facts.append({"name": "Reason", "value": _clip(summary.message, 1000)})
    for step in summary.steps[:30]:
        value = step.state + (f": {_clip(step.message, 300)}" if step.message else "")
        facts.append({"name": step.name, "value": value})
    problems = [check for check in summary.checks if check.outcome != "OK"]
    for check in problems[:20]:
        facts.append({"name": f"{check.dataset} / {check.check}", "value": f"{check.outcome}: {check.message}"})
    card: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": _headline(summary),
        "themeColor": _COLOURS.get(summary.outcome, "999999"),
        "title": _headline(summary),
        "sections": [{"facts": facts}],
    }
    if summary.url:
        card["potentialAction"] = [
            {"@type": "OpenUri", "name": "Open the run", "targets": [{"os": "default", "uri": summary.url}]}
        ]
    return card


def redact_url(url: str) -> str:
    """A webhook URL fit for logs: no credentials, query or fragment, and only the first path
    segment, since Slack and Teams put their secrets in the path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port:
        host = f"{host}:{parts.port}"
    segments = [segment for segment in parts.path.split("/") if segment]
    path = "/" + _clip(segments[0], 20) if segments else ""
    more = len(segments) > 1 or bool(parts.query) or bool(parts.fragment)
    return f"{parts.scheme}://{host}{path}" + ("/…" if more else "")


# -- delivery --------------------------------------------------------------------------------------


class _Failed(Exception):
    """One failed attempt, its message already free of secrets."""

    def __init__(self, message: str, *, retry: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry = retry
        self.retry_after = retry_after


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _smtp_failure(error: Exception, mailer: Mailer) -> _Failed:
    """Sort an SMTP failure: 4xx replies and network trouble are worth retrying, 5xx are final."""
    secrets = mailer.secrets()
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refused = error.recipients.items()
        text = "; ".join(f"{to}: {code} {_decode(reply)}" for to, (code, reply) in refused)
        return _Failed(
            _scrub(f"recipients refused: {text}", secrets), retry=any(c < 500 for c, _ in error.recipients.values())
        )
    if isinstance(error, smtplib.SMTPResponseException):
        what = "login refused" if isinstance(error, smtplib.SMTPAuthenticationError) else "SMTP server answered"
        text = f"{what} {error.smtp_code} {_decode(error.smtp_error)}"
        return _Failed(_scrub(text, secrets), retry=not 500 <= error.smtp_code < 600)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return _Failed(_scrub(f"SMTP server does not support it: {error}", secrets), retry=False)
    where = f"{mailer.host}:{mailer.port}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return _Failed(_scrub(f"certificate of {where} not trusted: {error.verify_message}", secrets), retry=False)
    if isinstance(error, smtplib.SMTPException):
        return _Failed(_scrub(f"SMTP error with {where}: {error}", secrets), retry=True)
    return _Failed(_scrub(f"could not reach {where}: {error}", secrets), retry=True)


def _decode(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def _retry_after(response: Any) -> float | None:
    value = response.headers.get("Retry-After", "")
    return min(float(value), 300.0) if value.strip().isdigit() else None


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float, settings: WebhookSettings) -> None:
    """One POST to where ``settings`` allows; raises ``_Failed`` with a message free of the URL's
    path and query, and of the reply (only its status is kept)."""
    parts = urlsplit(url)
    secrets = [url, parts.path + ("?" + parts.query if parts.query else ""), parts.query, parts.path]
    secrets = [secret for secret in secrets if secret not in ("", "/")]
    try:
        destination = settings.policy().check(url)
    except DestinationRefused as refused:
        raise _Failed(_scrub(str(refused), secrets), retry=False) from None
    except DestinationUnresolved as unresolved:
        raise _Failed(_scrub(str(unresolved), secrets), retry=True) from None
    secrets.insert(0, destination.url)
    try:
        response = post(destination, body, headers, timeout, settings.proxy, settings.ca_file or True)
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
        raise _Failed("not a valid webhook URL", retry=False) from None
    except requests.RequestException as error:
        text = re.sub(r"url: /\S*", "url: /…", str(error))
        raise _Failed(_scrub(f"{type(error).__name__}: {text}", secrets), retry=True) from None
    status = response.status_code
    response.close()  # its body is never read: nothing of it is kept
    if 200 <= status < 300:
        return
    try:
        phrase = HTTPStatus(status).phrase  # the standard phrase: the receiver's own is its text too
    except ValueError:
        phrase = ""
    text = f"HTTP {status} {phrase}".rstrip()
    if 300 <= status < 400:
        raise _Failed(f"{text} (redirects are not followed)", retry=False)
    retry = status >= 500 or status in (408, 429)
    raise _Failed(text, retry=retry, retry_after=_retry_after(response) if retry else None)


def reporter_label(reporter: EmailReporter | WebhookReporter) -> str:
    if isinstance(reporter, EmailReporter):
        shown = ", ".join(reporter.to[:5])
        return f"email to {shown}" + (f" and {len(reporter.to) - 5} more" if len(reporter.to) > 5 else "")
    return f"webhook {redact_url(reporter.url)}"


def deliver(
    reporter: EmailReporter | WebhookReporter,
    summary: RunSummary,
    mailer: Mailer,
    webhook_key: str,
    *,
    attempts: int = 3,
    backoff: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    webhook_timeout: float | None = None,
    webhooks: WebhookSettings | None = None,
) -> Delivery:
    """Send one report, retrying transient failures after ``backoff``, 2 * ``backoff``, … seconds
    (longer when a webhook answers Retry-After). Never raises: the result says what happened.

    Retried: network errors, SMTP 4xx replies, HTTP 5xx, 408 and 429. Final: SMTP 5xx (refused
    login, recipient or message), an untrusted certificate, other HTTP 4xx, redirects and
    webhook addresses that ``webhooks`` refuses (without settings, every address that is not
    public). ``webhook_timeout`` defaults to the settings' timeout. Blocks for the whole retry
    schedule, so call it from a worker thread.
    """
    payloads = {"slack": slack_payload, "teams": teams_payload, "json": json_payload}
    return _deliver(
        reporter,
        f"Report of run {summary.run_id}",
        lambda email_reporter: build_email(email_reporter, summary, mailer.sender),
        lambda fmt: payloads[fmt](summary),
        mailer,
        webhook_key,
        attempts=attempts,
        backoff=backoff,
        sleep=sleep,
        webhook_timeout=webhook_timeout,
        webhooks=webhooks,
    )


def _deliver(
    reporter: EmailReporter | WebhookReporter,
    what: str,
    email: Callable[[EmailReporter], EmailMessage],
    payload: Callable[[str], dict[str, Any]],
    mailer: Mailer,
    webhook_key: str,
    *,
    attempts: int,
    backoff: float,
    sleep: Callable[[float], None],
    webhook_timeout: float | None,
    webhooks: WebhookSettings | None,
) -> Delivery:
    """The retry schedule of ``deliver`` for a message of either kind (``what`` names it in logs)."""
    settings = webhooks if webhooks is not None else WebhookSettings()
    timeout = settings.timeout if webhook_timeout is None else webhook_timeout
    label = reporter_label(reporter)
    attempt_once: Callable[[], None]
    try:
        if isinstance(reporter, EmailReporter):
            message = email(reporter)

            def attempt_once() -> None:
                try:
                    mailer.send(message)
                except (smtplib.SMTPException, OSError) as error:
                    raise _smtp_failure(error, mailer) from None

        else:
            fmt = reporter.format
            body = json.dumps(payload(fmt), default=str, ensure_ascii=False).encode()

            def attempt_once() -> None:
                headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Himalia reporter"}
                if fmt == "json":
                    # A fresh timestamp at each attempt: a retry after backoff must not look like a replay.
                    timestamp = str(int(time.time()))
                    headers[TIMESTAMP_HEADER] = timestamp
                    if webhook_key:
                        headers[SIGNATURE_HEADER] = sign(webhook_key, timestamp, body)
                _post(reporter.url, body, headers, timeout, settings)

    except Exception:
        log.exception("Could not prepare the %s for the %s", what[0].lower() + what[1:], label)
        return Delivery(label, sent=False, attempts=0, error="could not prepare the report (details in the server log)")

    attempts = max(1, attempts)
    for attempt in range(1, attempts + 1):
        try:
            attempt_once()
            return Delivery(label, sent=True, attempts=attempt)
        except _Failed as failure:
            if not failure.retry or attempt == attempts:
                log.warning("%s, %s: not sent after %d attempts: %s", what, label, attempt, failure)
                return Delivery(label, sent=False, attempts=attempt, error=failure.message)
            sleep(max(backoff * 2 ** (attempt - 1), failure.retry_after or 0.0))
        except Exception as error:  # a bug here must not fail the run nor the other reporters
            log.exception("%s, %s: unexpected error", what, label)
            error_text = f"unexpected {type(error).__name__} (details in the server log)"
            return Delivery(label, sent=False, attempts=attempt, error=error_text)
    raise AssertionError("unreachable")  # pragma: no cover


FAILURE_NOTICE_SUBJECT = "${scenarioName} failed (project ${project}, run #${runId})"


def failure_notice(summary: RunSummary, mailer: Mailer) -> list[EmailReporter]:
    """What a scenario without reporters sends when its run failed: one email to the run-as user,
    with the log's end, so that a failure never goes unnoticed. Nothing when the run did not
    fail, the user has no email or no SMTP server is configured."""
    if summary.outcome not in FAILURES or not summary.run_as_email or not mailer.configured():
        return []
    try:
        notice = EmailReporter(
            type="email",
            to=[summary.run_as_email],
            subject=FAILURE_NOTICE_SUBJECT,
            attach=EmailAttachments(log=True),
            when="failure",
        )
    except ValidationError:
        log.warning("Run %s failed; its run-as user's email %r is not an address", summary.run_id, summary.run_as_email)
        return []
    return [notice]


def report_all(
    reporters: Sequence[EmailReporter | WebhookReporter],
    summary: RunSummary,
    mailer: Mailer,
    webhook_key: str,
    **kw: Any,
) -> list[Delivery]:
    """Send every report the reporters' ``when`` allows, one after another; see ``deliver``."""
    deliveries = []
    for reporter in reporters:
        if should_send(reporter.when, summary.outcome, summary.previous_outcome):
            deliveries.append(deliver(reporter, summary, mailer, webhook_key, **kw))
        else:
            reason = _ONLY[reporter.when]
            if reporter.when == "outcome_change":
                reason += f" (still {summary.outcome})"
            deliveries.append(Delivery(reporter_label(reporter), sent=False, attempts=0, skipped_reason=reason))
    return deliveries


# -- deadline alerts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertSummary:
    """What reporters say about a deadline alert (``late``, ``overrun`` or ``missed``): while
    there is time to act, so it names the deadline, the last run and how to run it again."""

    kind: str
    project: str
    scenario_id: str
    scenario_name: str
    #: The subject line: "LATE: Daily scoring not ready by 07:00 Europe/Paris".
    headline: str
    #: What happened, in a sentence (the alert's message).
    message: str
    #: The deadline (or the fire time) in UTC, and the time zone people wrote it in.
    due_at: datetime
    timezone: str
    last_run_id: int | None = None
    last_run_state: str | None = None
    #: The last run's page in the UI, when the control plane knows its public address.
    url: str | None = None

    @property
    def rerun_command(self) -> str:
        return f"himalia scenario run {self.project} {self.scenario_id}"


def alert_body(alert: AlertSummary) -> str:
    """The alert's email body: the deadline in its zone and in UTC, the last run, what to do."""
    local = alert.due_at.astimezone(ZoneInfo(alert.timezone))
    label = "Deadline" if alert.kind == "late" else "Due" if alert.kind == "overrun" else "Fire time"
    lines = [
        alert.message,
        "",
        f"Project {alert.project}, scenario {alert.scenario_id}",
        f"{label}: {_time(local)} ({alert.timezone}), {_time(alert.due_at.astimezone(UTC))}",
    ]
    if alert.last_run_id is None:
        lines.append("Last run: none")
    else:
        lines.append(f"Last run: #{alert.last_run_id}, {alert.last_run_state}")
    if alert.url:
        lines.append(f"Open the run: {alert.url}")
    lines.append(f"Run it again: {alert.rerun_command}")
    return "\n".join(lines) + "\n"


def build_alert_email(reporter: EmailReporter, alert: AlertSummary, sender: str) -> EmailMessage:
    """The alert's email; the reporter's subject and body templates are about runs and do not apply."""
    message = EmailMessage()
    message["Subject"] = _clip(" ".join(alert.headline.split()), 250)
    message["From"] = sender
    message["To"] = ", ".join(reporter.to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or "localhost")
    message["Auto-Submitted"] = "auto-generated"
    message["X-Himalia-Alert"] = f"{alert.project}/{alert.scenario_id}/{alert.kind}"
    message.set_content(alert_body(alert))
    return message


def alert_payload(alert: AlertSummary, fmt: str) -> dict[str, Any]:
    """The alert as a webhook body: JSON with kind, scenario, project and due_at; Slack or Teams text."""
    if fmt == "json":
        return {
            "event": "scenario_deadline_alert",
            "kind": alert.kind,
            "project": alert.project,
            "scenario": alert.scenario_id,
            "scenario_name": alert.scenario_name,
            "due_at": alert.due_at.astimezone(UTC).isoformat(),
            "timezone": alert.timezone,
            "message": alert.message,
            "last_run_id": alert.last_run_id,
            "last_run_state": alert.last_run_state,
            "url": alert.url,
            "rerun_command": alert.rerun_command,
        }
    lines = [alert.message, f"Run it again: {alert.rerun_command}"]
    if fmt == "slack":
        text = "\n".join(_mrkdwn(line) for line in lines)
        if alert.url:
            text += f"\n<{alert.url}|Open the last run>"
        return {
            "text": alert.headline,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{_mrkdwn(alert.headline)}*\n{text}"}}],
        }
    card: dict[str, Any] = {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": alert.headline,
        "themeColor": "F2711C",
        "title": alert.headline,
        "sections": [{"text": "\n\n".join(lines)}],
    }
    if alert.url:
        card["potentialAction"] = [
            {"@type": "OpenUri", "name": "Open the last run", "targets": [{"os": "default", "uri": alert.url}]}
        ]
    return card


def deliver_alert(
    reporter: EmailReporter | WebhookReporter,
    alert: AlertSummary,
    mailer: Mailer,
    webhook_key: str,
    *,
    attempts: int = 3,
    backoff: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    webhooks: WebhookSettings | None = None,
) -> Delivery:
    """Send one alert with the retries, signing and redaction of ``deliver``; never raises."""
    return _deliver(
        reporter,
        f"Alert {alert.kind} of {alert.project}/{alert.scenario_id}",
        lambda email_reporter: build_alert_email(email_reporter, alert, mailer.sender),
        lambda fmt: alert_payload(alert, fmt),
        mailer,
        webhook_key,
        attempts=attempts,
        backoff=backoff,
        sleep=sleep,
        webhook_timeout=None,
        webhooks=webhooks,
    )
