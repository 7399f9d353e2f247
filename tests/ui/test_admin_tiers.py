"""The Tiers and Connections pages, in both hosts.

A tier manager who is no administrator (bob, put in a group holding ``manage_tiers``) edits a
tier: the server refuses a memory limit below the request and the page says so beside that
field; the corrected edit is saved and the preview of the spawn form, the hub's own HTML in a
sandboxed frame, changes for the group the tier is reserved to; archiving takes it out of the
form. An administrator creates a connection from the page, tests it, replaces its secrets and
sees them as "set", never their values, and a test that fails says why.
"""

import contextlib
import uuid
from collections.abc import Iterator

from .conftest import AdminApp, shoot

GiB = 2**30


@contextlib.contextmanager
def tier_manager(admin_app: AdminApp, login: str) -> Iterator[None]:
    """``login`` in a group of Himalia's own holding ``manage_tiers`` (the hub's sync keeps it), made
    by the host's operator (at the hub, alice is an administrator only once she has signed in), for
    the test only: the labs and the hub are shared by every test of the session."""
    if admin_app.api(login, "GET", "groups/tier_managers").status_code == 404:
        admin_app.himalia("group", "add", "tier_managers", "--permission", "manage_tiers")
    admin_app.himalia("group", "add-member", "tier_managers", login)
    held = admin_app.api(login, "GET", "me").json()["global_permissions"]
    assert held["manage_tiers"] and not held["admin"], held
    try:
        yield
    finally:
        admin_app.himalia("group", "remove-member", "tier_managers", login)


def test_a_tier_manager_edits_a_tier_and_sees_the_preview_change(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    with tier_manager(admin_app, "bob"):
        name = f"ui-{uuid.uuid4().hex[:6]}"
        spec = {
            "display_name": "Analysis",
            "cpu_request": 1,
            "memory_request": 2 * GiB,
            "cost_per_hour": 0.25,
            "allowed_groups": ["analysts"],
        }
        assert admin_app.api("bob", "PUT", f"tiers/{name}", json=spec).status_code == 200

        app = admin_app.open(page, "bob", "tiers")
        tiers = app.locator(".hml-admin-tiers")
        row = tiers.locator(f"tr[data-tier='{name}']")
        assert "analysts" in row.inner_text() and "0.25" in row.inner_text()

        preview = tiers.locator("section[aria-label='Spawn form preview']")
        preview.locator("select[name=preview-group]").select_option("analysts")
        form = app.frame_locator("iframe.hml-admin-preview-frame").locator("#himalia-tiers")
        form.locator(f"input[value='{name}']").wait_for()
        offered = form.locator("label.himalia-tier", has=app.locator(f"input[value='{name}']"))
        assert "Analysis" in offered.inner_text() and "2 Gi memory" in offered.inner_text()
        preview.locator("select[name=preview-group]").select_option("readers")
        preview.locator(".hml-admin-preview-tiers").filter(has_not_text=name).wait_for()

        # A memory limit below the request: refused by the server, the field named beside it.
        row.get_by_role("button", name="Edit").click()
        editor = tiers.locator(f"form[aria-label='Edit the tier {name}']")
        editor.locator("input[name=memory_limit]").fill("1")
        editor.get_by_role("button", name="Save").click()
        refusal = editor.locator("[data-field='memory_limit'] .hml-admin-field-error")
        refusal.wait_for()
        assert "memory_limit is below memory_request" in refusal.inner_text()
        shoot(page, f"admin-tiers-{admin_app.host}-refused")
        assert admin_app.api("bob", "GET", f"tiers/{name}").json()["memory_limit"] is None

        # Corrected and renamed: saved, and the analysts' form shows the new tier.
        editor.locator("input[name=memory_limit]").fill("4")
        editor.locator("input[name=display_name]").fill("Analysis, larger")
        editor.get_by_role("button", name="Save").click()
        editor.wait_for(state="detached")
        row.filter(has_text="Analysis, larger").wait_for()
        saved = admin_app.api("bob", "GET", f"tiers/{name}").json()
        assert (saved["memory_limit"], saved["display_name"]) == (4 * GiB, "Analysis, larger")
        preview.locator("select[name=preview-group]").select_option("analysts")
        offered.filter(has_text="Analysis, larger").wait_for()
        assert "4 Gi memory" in offered.inner_text()
        shoot(page, f"admin-tiers-{admin_app.host}-preview")

        # Archived, the tier leaves the form; unarchived, it is back.
        row.get_by_role("button", name="Archive").click()
        row.filter(has_text="archived").wait_for()
        preview.locator(".hml-admin-preview-tiers").filter(has_not_text=name).wait_for()
        assert form.locator(f"input[value='{name}']").count() == 0
        row.get_by_role("button", name="Unarchive").click()
        form.locator(f"input[value='{name}']").wait_for()

        # What runs on it now: nothing, until a server starts there.
        started = admin_app.api("bob", "POST", "servers", json={"user": "bob", "tier": name, "server_name": "ui"})
        assert started.status_code == 201, started.text
        try:
            row.get_by_role("button", name="What runs").click()
            running = tiers.locator(f"table[aria-label='Running on {name}']")
            running.locator("tr[data-kind='server']", has_text="bob").wait_for()
            assert "“ui”" in running.inner_text()
        finally:
            admin_app.api("bob", "DELETE", f"servers/{started.json()['id']}")
            admin_app.api("bob", "PUT", f"tiers/{name}", json={**spec, "archived": True})


def test_an_administrator_creates_tests_and_edits_a_connection(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    warehouse = admin_app.api("alice", "GET", "connections/warehouse").json()["params"]["url"]
    name = f"ui_{uuid.uuid4().hex[:6]}"
    app = admin_app.open(page, "alice", "connections")
    connections = app.locator(".hml-admin-connections")
    connections.get_by_role("button", name="New connection").click()
    editor = connections.locator("form[aria-label='New connection']")
    editor.locator("input[name=name]").fill(name)
    editor.locator("select[name=type]").select_option("sql")
    editor.locator("input[name=url]").fill(warehouse)
    editor.locator("select[name='usable_by.mode']").select_option("groups")
    editor.locator("input[name='usable_by.groups'][value='analysts']").check()
    editor.get_by_role("button", name="Create").click()
    editor.wait_for(state="detached")

    row = connections.locator(f"tr[data-connection='{name}']")
    assert "groups: analysts" in row.inner_text() and "alice" in row.inner_text()
    row.get_by_role("button", name="Test").click()
    outcome = row.locator(".hml-admin-test-outcome")
    outcome.wait_for()
    assert outcome.get_attribute("data-ok") == "true", outcome.inner_text()
    assert "Connected." in outcome.inner_text()
    shoot(page, f"admin-connections-{admin_app.host}-tested")

    # Secrets are write-only: set from the form, shown as set, never read back.
    secret = f"never-shown-{uuid.uuid4().hex}"
    row.get_by_role("button", name="Edit").click()
    editor = connections.locator(f"form[aria-label='Edit the connection {name}']")
    editor.locator("input[name=replace_secrets]").check()
    editor.get_by_role("button", name="Add a secret").click()
    editor.locator("input[name=secret-name]").fill("timeout_token")
    editor.get_by_role("button", name="Save").click()
    refusal = editor.locator("[data-field='secrets'] .hml-admin-field-error")
    assert "enter the value of timeout_token" in refusal.inner_text()
    editor.locator("input[name=secret-value]").fill(secret)
    editor.get_by_role("button", name="Save").click()
    editor.wait_for(state="detached")
    row.locator(".hml-admin-secret-state", has_text="timeout_token: set").wait_for()
    described = admin_app.api("alice", "GET", f"connections/{name}")
    assert described.json()["secret_names"] == ["timeout_token"] and secret not in described.text

    # Kept when the form is saved again without replacing them; a file that is not there fails the test.
    row.get_by_role("button", name="Edit").click()
    editor.locator("input[name=url]").fill(warehouse.replace("warehouse.sqlite", "missing.sqlite"))
    editor.get_by_role("button", name="Save").click()
    editor.wait_for(state="detached")
    assert admin_app.api("alice", "GET", f"connections/{name}").json()["secret_names"] == ["timeout_token"]
    row.get_by_role("button", name="Test").click()
    failed = row.locator(".hml-admin-test-outcome[data-ok='false']")
    failed.wait_for()
    assert failed.inner_text().startswith("Fails: ") and "unable to open database file" in failed.inner_text()
    assert secret not in app.content()
    shoot(page, f"admin-connections-{admin_app.host}-failed")

    # Deleted from the page after a confirmation; the demo's warehouse, which datasets read, is refused in place.
    used = connections.locator("tr[data-connection='warehouse']")
    used.get_by_role("button", name="Delete").click()
    used.get_by_role("button", name="Delete it").click()
    refusal = used.get_by_role("alert")
    refusal.wait_for()
    assert "transactions_2018" in refusal.inner_text(), refusal.inner_text()
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Delete it").click()
    row.wait_for(state="detached")
    assert admin_app.api("alice", "GET", f"connections/{name}").status_code == 404


def test_per_person_credentials_are_set_from_the_page_and_never_shown(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    warehouse = admin_app.api("alice", "GET", "connections/warehouse").json()["params"]["url"]
    name = f"ui_own_{uuid.uuid4().hex[:6]}"
    app = admin_app.open(page, "alice", "connections")
    connections = app.locator(".hml-admin-connections")
    connections.get_by_role("button", name="New connection").click()
    editor = connections.locator("form[aria-label='New connection']")
    editor.locator("input[name=name]").fill(name)
    editor.locator("input[name=url]").fill(warehouse)
    editor.locator("select[name=credentials_mode]").select_option("per_user")
    assert editor.locator("fieldset.hml-admin-secrets").count() == 0, "a per-person connection holds no shared secrets"
    editor.get_by_role("button", name="Create").click()
    editor.wait_for(state="detached")

    row = connections.locator(f"tr[data-connection='{name}']")
    assert "mine: not set" in row.locator(".hml-admin-secret-state").inner_text()
    row.get_by_role("button", name="Test").click()
    assert "needs your own credentials" in row.locator(".hml-admin-test-outcome[data-ok='false']").inner_text()

    secret = f"mine-{uuid.uuid4().hex}"
    row.get_by_role("button", name="My credentials").click()
    mine = connections.locator(f"form[aria-label='My credentials for {name}']")
    mine.locator("input[name=secret-value]").fill(secret)
    mine.get_by_role("button", name="Save my credentials").click()
    mine.wait_for(state="detached")
    row.locator(".hml-admin-secret-state", has_text="mine: set").wait_for()
    row.get_by_role("button", name="Test").click()
    row.locator(".hml-admin-test-outcome[data-ok='true']").wait_for()
    assert secret not in app.content()
    shoot(page, f"admin-connections-{admin_app.host}-mine")
    admin_app.api("alice", "DELETE", f"connections/{name}")
