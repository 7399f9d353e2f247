"""Budget alerts: at 75 % and 100 % of a month's budget, one mail to those who answer for it.

A scheduler ``Watcher``, so it runs wherever the scheduler runs. Every ``CHECK_INTERVAL`` it reads
each budget's spend this month (a few statements, whatever the budgets) and raises what has been
crossed. An alert is a ``BudgetAlert`` row, unique per budget, month and threshold: the process
whose insert wins mails it (two control planes on one PostgreSQL mail once, a restart or a second
look mails nothing again), to the platform's administrators and, for a project's budget, the
project's owner and administrators, through the control plane's mail server, in a thread of its
own so that a slow mail server never holds back the scheduler. Raising and mailing are audited.
"""

import smtplib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from himalia.compute.budgets import THRESHOLDS, BudgetService, Spend
from himalia.identity.caller import Caller
from himalia.identity.projects import global_administrators, project_administrators
from himalia.identity.service import Service
from himalia.scenarios.reporting import Mailer
from himalia.store.orm import BudgetAlert, Project, User
from himalia.wire.identity import is_mail_address

SCHEDULER = Caller.system("scheduler")
#: How often spend is compared with the budgets: usage moves by the hour, not the second.
CHECK_INTERVAL = timedelta(minutes=5)
#: Tries of one mail, ``RETRY_DELAY`` seconds apart (doubling): a mail server restarting is no lost alert.
ATTEMPTS = 3
RETRY_DELAY = 2.0
UNUSABLE_ADDRESS = "not mailed: the profile email is not one plain address (correct it on the People page)"


class BudgetWatcher(Service):
    """Raises and mails the budget alerts; ``watch`` is the scheduler's, ``check`` does one look."""

    def __init__(
        self,
        db: Any,
        audit: Any,
        log: Any,
        budgets: BudgetService,
        mailer: Mailer,
    ) -> None:
        super().__init__(db, audit, log)
        self.budgets = budgets
        self.mailer = mailer
        #: Mails being sent, in their own threads (tests and a clean stop wait for them).
        self.sending: list[Future[None]] = []
        self._senders = ThreadPoolExecutor(1, thread_name_prefix="himalia-budgets")
        self._next: datetime | None = None

    def watch(self, now: datetime) -> datetime | None:
        if self._next is None or now >= self._next:
            self.check(now)
            self._next = now + CHECK_INTERVAL
        return self._next

    def close(self) -> None:
        self._senders.shutdown(wait=True)

    def check(self, now: datetime) -> None:
        """Raise every threshold crossed this month that has no alert yet."""
        self.sending = [future for future in self.sending if not future.done()]
        spends = self.budgets.spends(now)
        crossed = [
            (spend, threshold)
            for spend in spends
            for threshold in THRESHOLDS
            if spend.spent >= spend.amount * threshold / 100
        ]
        if not crossed:
            return
        with self.db.read() as session:
            raised = set(
                session.execute(
                    select(BudgetAlert.budget_id, BudgetAlert.threshold).where(
                        BudgetAlert.period == crossed[0][0].period
                    )
                ).all()
            )
        for spend, threshold in crossed:
            if (spend.budget_id, threshold) not in raised:
                self._raise(spend, threshold, now)

    def _raise(self, spend: Spend, threshold: int, now: datetime) -> None:
        """Insert the alert; if this process's insert won, audit it and mail it."""
        with self.db.write() as session:
            alert = BudgetAlert(
                budget_id=spend.budget_id,
                period=spend.period,
                threshold=threshold,
                spent=spend.spent,
                amount=spend.amount,
                deliveries=[],
                raised_at=now,
            )
            try:
                with session.begin_nested():
                    session.add(alert)
                    session.flush()
            except IntegrityError:
                return  # raised already: before a restart, or by another control plane
            logins = set(global_administrators(session))
            if spend.project_id is not None:
                project = session.get_one(Project, spend.project_id)
                logins |= set(project_administrators(session, project))
                if project.owner.active:
                    logins.add(project.owner.login)
            addresses = sorted(
                email
                for (email,) in session.execute(select(User.email).where(User.login.in_(logins), User.email != ""))
            )
            self.audit.record(
                session,
                SCHEDULER,
                "budget.alert",
                "budget",
                str(spend.budget_id),
                project_key=spend.project_key,
                details={
                    "period": spend.period,
                    "threshold": threshold,
                    "spent": spend.spent,
                    "amount": spend.amount,
                    "recipients": len(addresses),
                },
            )
            alert_id = alert.id
        self.log.warning(
            "Budget of the %s: %s of %s %s spent in %s (%d %%)",
            spend.subject,
            f"{spend.spent:.2f}",
            f"{spend.amount:.2f}",
            self.budgets.currency,
            spend.period,
            threshold,
        )
        if addresses:
            self.sending.append(self._senders.submit(self._send, alert_id, spend, threshold, addresses))

    def _message(self, spend: Spend, threshold: int, addresses: list[str]) -> EmailMessage:
        currency = self.budgets.currency
        reached = "has used up" if threshold >= 100 else f"has reached {threshold} % of"
        message = EmailMessage()
        message["Subject"] = f"Budget: the {spend.subject} {reached} its budget for {spend.period}"
        message["From"] = self.mailer.sender
        message["To"] = ", ".join(addresses)
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain=parseaddr(self.mailer.sender)[1].rpartition("@")[2] or "localhost")
        message["Auto-Submitted"] = "auto-generated"
        message["X-Himalia-Alert"] = f"budget/{spend.budget_id}/{spend.period}/{threshold}"
        lines = [
            f"The {spend.subject} has spent {spend.spent:.2f} {currency} of its monthly budget of "
            f"{spend.amount:.2f} {currency} in {spend.period} (UTC), "
            f"{100 * spend.spent / spend.amount:.0f} %.",
            "",
            "Spend counts the hours of workspace servers and scenario runs on each tier times the "
            "tier's cost per hour; running ones count until now. Nothing is stopped: this is a notice.",
        ]
        message.set_content("\n".join(lines) + "\n")
        return message

    def _send(self, alert_id: int, spend: Spend, threshold: int, addresses: list[str]) -> None:
        """Mail the alert to the usable addresses and record a failed delivery for each other one:
        a profile email stored before emails were checked (a pasted newline) stops no one's mail."""
        usable = [address for address in addresses if is_mail_address(address)]
        mailed = self._mail(spend, threshold, usable) if usable else None
        unusable = [
            {"to": _printable(address), "ok": False, "detail": UNUSABLE_ADDRESS}
            for address in addresses
            if address not in usable
        ]
        deliveries = ([mailed] if mailed else []) + unusable
        with self.db.write() as session:
            session.get_one(BudgetAlert, alert_id).deliveries = deliveries
            self.audit.record(
                session,
                SCHEDULER,
                "budget.alert_report",
                "budget",
                str(spend.budget_id),
                project_key=spend.project_key,
                details={
                    "period": spend.period,
                    "sent": bool(mailed and mailed["ok"]),
                    "detail": mailed["detail"] if mailed else "no usable address",
                    "unusable_addresses": len(unusable),
                },
            )

    def _mail(self, spend: Spend, threshold: int, recipients: list[str]) -> dict[str, Any]:
        """One mail to ``recipients``: what became of it, never an exception."""
        shown = ", ".join(recipients)
        if not self.mailer.configured():
            return {"to": shown, "ok": False, "detail": "no mail server is configured (c.Mailer.host)"}
        try:
            message = self._message(spend, threshold, recipients)
        except Exception:  # a bug or an odd sender must not lose the alert's record
            self.log.exception("Could not prepare the mail of budget %s's alert", spend.budget_id)
            return {"to": shown, "ok": False, "detail": "could not prepare the mail (details in the server log)"}
        return self._deliver(message) | {"to": shown}

    def _deliver(self, message: EmailMessage) -> dict[str, Any]:
        """Send, retrying what may pass later; what the server said, never its credentials."""
        where = f"{self.mailer.host}:{self.mailer.port}"
        detail = ""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self.mailer.send(message)
                return {"ok": True, "detail": f"sent after {attempt} attempt(s)"}
            except smtplib.SMTPResponseException as error:
                detail = f"the SMTP server at {where} answered {error.smtp_code}"
                if 500 <= error.smtp_code < 600:
                    break
            except smtplib.SMTPRecipientsRefused:
                detail = f"the SMTP server at {where} refused every recipient"
                break
            except (smtplib.SMTPException, OSError) as error:
                detail = f"could not reach the SMTP server at {where}: {type(error).__name__}"
            if attempt < ATTEMPTS:
                time.sleep(RETRY_DELAY * 2 ** (attempt - 1))
        self.log.warning("A budget alert was not mailed: %s", detail)
        return {"ok": False, "detail": detail}


def _printable(text: str) -> str:
    """``text`` with its control characters and line breaks escaped, as a delivery shows it."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
