"""The Audit page, in both hosts: a viewer of the audit filters and verifies.

carol, a reader put in a group of Himalia's own holding ``view_audit`` (no administrator), opens
the application and sees the Audit page but none of the administrators' pages. alice changes a
group of her own 55 times and creates a connection with a secret; carol filters the trail by that
group and an action prefix (56 entries: two pages), by actor (alice's, then her own: none) and by
time in her browser's zone, exports the filter as JSON lines and as CSV (the downloads hold
exactly the filtered entries, oldest first), finds the connection's entry without its secret
anywhere on the page or in the export, and verifies the chain: intact. In a lab of its own, an
entry edited and one deleted in the database are each named when the chain is verified.
"""

import contextlib
import csv
import io
import json
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from .conftest import AdminApp, _start_lab, playwright_api, shoot

ADMINISTRATORS_PAGES = ("People", "Groups", "Tokens", "Permissions")
UPDATES = 55


def sign_in_the_administrator(admin_app: AdminApp, page: "playwright_api.Page") -> None:
    """At the hub, alice is an administrator once she has signed in (the provider's ``admins``
    group says so at each login): sign her in, in a browser context of her own."""
    if admin_app.host != "hub":
        return
    assert page.context.browser is not None
    context = page.context.browser.new_context()
    try:
        admin_app.open(context.new_page(), "alice")
    finally:
        context.close()


@contextlib.contextmanager
def auditor(admin_app: AdminApp, login: str) -> Iterator[None]:
    """``login`` in a group of Himalia's own holding ``view_audit`` (the hub's sync keeps it), for
    the test only: the labs and the hub are shared by every test of the session."""
    group = {"name": "auditors", "description": "Read and verify the audit trail.", "permissions": ["view_audit"]}
    made = admin_app.api("alice", "POST", "groups", json=group)
    assert made.status_code in (201, 409), made.text
    joined = admin_app.api("alice", "POST", "groups/auditors/members", json={"user": login})
    assert joined.status_code == 200, joined.text
    try:
        yield
    finally:
        left = admin_app.api("alice", "DELETE", f"groups/auditors/members/{login}")
        assert left.status_code == 200, left.text


def local_minute(moment: datetime) -> str:
    """``moment`` as a ``datetime-local`` value in this machine's zone, the browser's own."""
    return moment.astimezone().strftime("%Y-%m-%dT%H:%M")


def filter_by(app: "playwright_api.Page", **fields: str) -> None:
    """Fill the filter form's ``fields`` (the others emptied) and apply it."""
    form = app.locator("form[aria-label='Filter the trail']")
    for name in ("actor", "action", "objectType", "objectId", "project", "since", "until"):
        form.locator(f"input[name={name}]").fill(fields.get(name, ""))
    form.get_by_role("button", name="Filter").click()


#: Between the first and the last entry shown, as the page writes it ("Entries 1-50 of 56").
EN_DASH = "\N{EN DASH}"


def summary(app: "playwright_api.Page", text: str) -> None:
    """Wait until the page's count of entries says ``text`` (``-`` for the page's en dash)."""
    app.locator(".hml-admin-audit-summary").filter(has_text=text.replace("-", EN_DASH)).wait_for()


def download(app: "playwright_api.Page", label: str) -> str:
    with app.expect_download() as started:
        app.get_by_role("link", name=label).click()
    return started.value.path().read_text(encoding="utf-8")


def test_a_viewer_of_the_audit_filters_and_verifies(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    sign_in_the_administrator(admin_app, page)
    with auditor(admin_app, "carol"):
        me = admin_app.api("carol", "GET", "me").json()["global_permissions"]
        assert me["view_audit"] and not me["admin"]

        started = datetime.now().astimezone() - timedelta(minutes=1)
        name = f"audit_ui_{uuid.uuid4().hex[:6]}"
        made = admin_app.api("alice", "POST", "groups", json={"name": name, "description": "v0"})
        assert made.status_code == 201, made.text
        for version in range(1, UPDATES + 1):
            changed = admin_app.api("alice", "PATCH", f"groups/{name}", json={"description": f"v{version}"})
            assert changed.status_code == 200, changed.text
        secret = f"never-shown-{uuid.uuid4().hex}"
        connection = {"name": name, "type": "files", "params": {"url": "s3://audited"}, "secrets": {"password": secret}}
        assert admin_app.api("alice", "POST", "connections", json=connection).status_code == 201

        app = admin_app.open(page, "carol", "audit")
        navigation = app.locator("nav[aria-label='Administration pages']")
        navigation.get_by_role("link", name="Audit").wait_for()
        offered = navigation.locator("a").all_inner_texts()
        assert not set(offered) & set(ADMINISTRATORS_PAGES), offered
        audit = app.locator(".hml-admin-audit")
        assert "Since (" in audit.inner_text()  # the zone is named beside the times

        # The group and every action on groups: the creation and 55 changes, on two pages.
        filter_by(app, action="group", objectId=name)
        summary(app, f"Entries 1-50 of {UPDATES + 1}")
        rows = audit.locator("table[aria-label='Audit entries'] tbody tr")
        assert rows.count() == 50
        actions = audit.locator(".hml-admin-audit-action").all_inner_texts()
        assert set(actions) == {"group.update"} and set(audit.locator(".hml-admin-audit-actor").all_inner_texts()) == {
            "alice"
        }
        shoot(page, f"admin-audit-{admin_app.host}-filtered")
        audit.get_by_role("button", name="Older").click()
        summary(app, f"Entries 51-{UPDATES + 1} of {UPDATES + 1}")
        assert rows.count() == UPDATES + 1 - 50
        assert audit.locator(".hml-admin-audit-action").all_inner_texts()[-1] == "group.create"
        assert audit.get_by_role("button", name="Older").is_disabled()
        audit.get_by_role("button", name="Newer").click()
        summary(app, f"Entries 1-50 of {UPDATES + 1}")

        # By actor: alice made them all, carol none; by time, in the browser's zone.
        filter_by(app, actor="alice", objectId=name)
        summary(app, f"of {UPDATES + 2}")  # and the connection's entry, which has the same id
        filter_by(app, actor="carol", objectId=name)
        summary(app, "No entry matches.")
        assert rows.count() == 0
        filter_by(app, objectId=name, since=local_minute(started))
        summary(app, f"of {UPDATES + 2}")
        filter_by(app, objectId=name, until=local_minute(started))
        summary(app, "No entry matches.")

        # The exports hold the filtered entries, oldest first, as the API lists them.
        filter_by(app, action="group.update", objectId=name)
        summary(app, f"of {UPDATES}")
        listed = admin_app.api(
            "carol", "GET", "audit", params={"action": "group.update", "object_id": name, "limit": 500}
        )
        expected = sorted(entry["seq"] for entry in listed.json()["items"])
        assert len(expected) == UPDATES
        exported = [json.loads(line) for line in download(app, "Export JSON lines").splitlines()]
        assert [entry["seq"] for entry in exported] == expected
        assert {(entry["action"], entry["object_id"]) for entry in exported} == {("group.update", name)}
        assert [entry["details"]["description"] for entry in exported] == [f"v{n}" for n in range(1, UPDATES + 1)]
        table = list(csv.DictReader(io.StringIO(download(app, "Export CSV"))))
        assert [int(row["seq"]) for row in table] == expected
        assert {(row["action"], row["object_id"], row["actor"]) for row in table} == {("group.update", name, "alice")}

        # The connection's entry names its secret, never its value.
        filter_by(app, action="connection", objectId=name)
        summary(app, "Entries 1-1 of 1")
        entry = rows.first
        entry.locator("summary").click()
        assert "password" in entry.locator(".hml-admin-audit-details").inner_text()
        assert secret not in app.content()
        assert secret not in download(app, "Export JSON lines") + download(app, "Export CSV")

        audit.get_by_role("button", name="Verify the chain").click()
        verdict = audit.locator(".hml-admin-audit-intact")
        verdict.wait_for()
        assert "Intact" in verdict.inner_text()
        assert admin_app.api("carol", "GET", "audit/verify").json()["ok"]
        shoot(page, f"admin-audit-{admin_app.host}-verified")


def test_a_tampered_chain_is_shown_entry_by_entry(page) -> None:  # type: ignore[no-untyped-def]
    """In a lab of its own (the shared stores must stay intact), an entry edited in the database
    and one deleted are each named by Verify the chain, as ``himalia audit verify`` names them."""
    base = Path(tempfile.mkdtemp(prefix="himalia-ui-tampered-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    (base / "root").mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HIMALIA_", "JUPYTER"))},
        "HIMALIA_HOME": str(base / "home"),
        "JUPYTER_CONFIG_DIR": str(base / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(base / "jupyter-runtime"),
    }
    try:
        with contextlib.contextmanager(_start_lab)(
            base / "root", env, "tampered", "--HimaliaExtension.local_user=ada"
        ) as lab:
            for index in range(4):
                made = lab.api("POST", "groups", json={"name": f"tampered_{index}", "description": "before"})
                assert made.status_code == 201, made.text
            entries = lab.api("GET", "audit", params={"action": "group.create"}).json()["items"]
            edited, deleted = entries[-1]["seq"], entries[-2]["seq"]
            with sqlite3.connect(base / "home" / "himalia.sqlite") as store:
                store.execute("UPDATE audit_entries SET details = '{\"forged\": true}' WHERE seq = ?", (edited,))
                store.execute("DELETE FROM audit_entries WHERE seq = ?", (deleted,))
            page.goto(f"{lab.url}himalia/admin/?token={lab.token}#/audit")
            audit = page.locator(".hml-admin-audit")
            audit.get_by_role("button", name="Verify the chain").click()
            verdict = audit.locator(".hml-admin-audit-tampered")
            verdict.wait_for()
            problems = verdict.locator("li").all_inner_texts()
            assert f"entry {edited}: content does not match its hash (edited or forged)" in problems
            assert f"entry {deleted}: missing (deleted)" in problems
            assert not audit.locator(".hml-admin-audit-intact").count()
            shoot(page, "admin-audit-lab-tampered")
    finally:
        shutil.rmtree(base, ignore_errors=True)
