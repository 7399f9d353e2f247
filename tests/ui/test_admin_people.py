"""The People, Groups and Tokens pages, in both hosts: an administrator reads what deactivating
someone will do (their token, the scenario running as them), confirms, sees them deactivated and
their token gone, and reactivates them; adds a member to a group, switches one of its global
permissions and removes the member; revokes a token. A group from JupyterHub offers no member
change. Someone else gets none of these pages."""

import uuid

from .conftest import AdminApp, shoot


def test_an_administrator_deactivates_someone_after_seeing_what_it_will_do(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    suffix = uuid.uuid4().hex[:6]
    login, scenario = f"leaver{suffix}", f"leaving_{suffix}"
    app = admin_app.open(page, "alice", "people")  # at the hub, signing in makes alice an administrator here
    created = admin_app.api("alice", "POST", "users", json={"login": login, "display_name": "Leaving Soon"})
    assert created.status_code == 201, created.text
    token = admin_app.api("alice", "POST", "tokens", json={"user": login, "name": "laptop"})
    assert token.status_code == 201, token.text
    definition = {
        "id": scenario,
        "name": "Runs as the leaver",
        "steps": [{"name": "Checks", "type": "run_checks", "dataset": "transactions_2018"}],
        "triggers": [{"type": "time", "schedule": "daily at 03:00"}],
        "run_as": login,
    }
    saved = admin_app.api("alice", "POST", "projects/FRAUD/scenarios", json={"definition": definition})
    assert saved.status_code == 201, saved.text
    try:
        people = app.locator(".hml-admin-people")
        people.get_by_label("Search").fill(login)
        row = people.locator(f"tr[data-login='{login}']")
        row.wait_for()
        assert people.locator("tbody tr[data-login]").count() == 1  # the search narrowed the list
        assert "local" in row.inner_text() and "never" in row.locator(".hml-admin-last-seen").inner_text()

        row.get_by_role("button", name="Deactivate…").click()
        confirmation = people.get_by_role("dialog", name=f"Deactivate {login}")
        confirmation.get_by_text("Tokens revoked (1)").wait_for()
        said = confirmation.inner_text()
        assert "laptop" in said and token.json()["prefix"] in said
        assert f"FRAUD/{scenario}" in said and "scheduled" in said
        assert "Servers running (0)" in said
        shoot(page, f"admin-people-{admin_app.host}-deactivation")
        confirmation.get_by_role("button", name=f"Deactivate {login}").click()

        row.locator(".hml-admin-status", has_text="deactivated by alice").wait_for()
        assert admin_app.api("alice", "GET", "tokens", params={"user": login}).json()["total"] == 0
        described = admin_app.api("alice", "GET", f"users/{login}").json()
        assert described["active"] is False and described["deactivated_by"] == "alice"
        refused = admin_app.api("alice", "POST", f"projects/FRAUD/scenarios/{scenario}/run", json={})
        assert refused.status_code == 409 and "deactivated" in refused.json()["message"]

        people.get_by_label("Status").select_option("deactivated")
        row.wait_for()
        row.get_by_role("button", name="Reactivate").click()
        row.wait_for(state="detached")  # no longer among the deactivated
        assert admin_app.api("alice", "GET", f"users/{login}").json()["active"] is True

        # The person signed in is seen, in the browser's zone named.
        people.get_by_label("Status").select_option("all")
        people.get_by_label("Search").fill("alice")
        seen = people.locator("tr[data-login='alice'] .hml-admin-last-seen")
        seen.wait_for()
        assert seen.inner_text() != "never" and "UTC" in seen.inner_text()
    finally:
        admin_app.api("alice", "DELETE", f"projects/FRAUD/scenarios/{scenario}")


def test_an_administrator_adds_and_removes_a_group_member(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    group = f"reviewers{uuid.uuid4().hex[:6]}"
    app = admin_app.open(page, "alice", "groups")
    made = admin_app.api("alice", "POST", "groups", json={"name": group, "description": "Quarterly access review"})
    assert made.status_code == 201, made.text
    app.reload()
    card = app.locator(f"section[aria-label='Group {group}']")
    card.wait_for()
    assert "managed here" in card.inner_text()

    card.get_by_label(f"Add a member to {group}").select_option("carol")
    card.get_by_role("button", name="Add member").click()
    card.locator("li[data-member='carol']").wait_for()
    assert admin_app.api("alice", "GET", f"groups/{group}").json()["members"] == ["carol"]

    card.get_by_label("view_audit").click()
    card.locator("input[name='view_audit']:checked:enabled").wait_for()  # saved, and shown from the server
    assert admin_app.api("alice", "GET", f"groups/{group}").json()["permissions"] == ["view_audit"]
    assert admin_app.api("carol", "GET", "audit", params={"limit": 1}).status_code == 200  # carol holds it now
    shoot(page, f"admin-groups-{admin_app.host}-member")

    card.get_by_role("button", name=f"Remove carol from {group}").click()
    card.locator("li[data-member='carol']").wait_for(state="detached")
    assert admin_app.api("alice", "GET", f"groups/{group}").json()["members"] == []
    assert admin_app.api("carol", "GET", "audit", params={"limit": 1}).status_code == 403

    card.get_by_role("button", name="Delete group…").click()
    card.get_by_role("button", name=f"Delete {group}").click()
    card.wait_for(state="detached")
    assert admin_app.api("alice", "GET", f"groups/{group}").status_code == 404

    if admin_app.host == "hub":
        # alice's groups came from the identity provider at her sign-in: their members are its own.
        from_hub = app.locator("section[aria-label='Group data_team']")
        assert "from JupyterHub" in from_hub.inner_text()
        assert "come from JupyterHub (the identity provider)" in from_hub.inner_text()
        assert from_hub.get_by_role("button", name="Add member").count() == 0
        assert from_hub.get_by_role("button", name="Remove alice from data_team").count() == 0


def test_an_administrator_revokes_a_token_after_confirming(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    name = f"ci-{uuid.uuid4().hex[:6]}"
    app = admin_app.open(page, "alice", "tokens")
    issued = admin_app.api("alice", "POST", "tokens", json={"user": "bob", "name": name, "expires_in_days": 30})
    assert issued.status_code == 201, issued.text
    tokens = app.locator(".hml-admin-tokens")
    tokens.get_by_label("Whose").select_option("bob")
    row = tokens.locator(f"tr[data-token='{issued.json()['id']}']")
    row.wait_for()
    shown = row.inner_text()
    assert name in shown and issued.json()["prefix"] in shown and "every project" in shown
    assert issued.json()["token"] not in app.content()  # the value is never shown again
    row.get_by_role("button", name="Revoke…").click()
    row.get_by_role("dialog").get_by_role("button", name="Revoke", exact=True).click()
    row.wait_for(state="detached")
    bob_tokens = admin_app.api("alice", "GET", "tokens", params={"user": "bob"}).json()["items"]
    assert all(t["id"] != issued.json()["id"] for t in bob_tokens)


def test_someone_else_gets_none_of_these_pages(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    for path in ("users", "users/carol/deactivation"):
        assert admin_app.api("bob", "GET", path).status_code == 403
    app = admin_app.open(page, "bob", "people")
    main = app.locator("main").inner_text()
    assert "needs the permission admin" in main or "You may open no page" in main
    assert app.locator(".hml-admin-people").count() == 0
    nav = app.locator("nav[aria-label='Administration pages']")
    for title in ("People", "Groups", "Tokens"):
        assert nav.get_by_role("link", name=title, exact=True).count() == 0
