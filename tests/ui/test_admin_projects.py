"""The Projects page and issuing a token on the Tokens page, in both hosts: an administrator creates
a project for someone else, renames it, archives it (told first which scenario that deactivates)
and unarchives it, sees its deletion refused while a scenario is active and while a bundle version
is stored, then deletes it with its bundle versions; issues a token for bob, whose value is shown
once and works as bob. A project creator (bob, of the demo's analysts) sees the projects he holds a
grant on and changes only his own; someone with neither ``admin`` nor ``create_projects`` (carol)
gets no Projects page."""

import uuid

import requests

from .conftest import AdminApp, shoot

SCENARIO = {
    "name": "Nightly settings",
    "steps": [{"name": "Set", "type": "set_variables", "values": {"threshold": 0.7}}],
    "triggers": [{"type": "time", "schedule": "daily at 03:00"}],
}


def test_an_administrator_manages_a_project_from_creation_to_deletion(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    key = f"P{uuid.uuid4().hex[:6].upper()}"
    scenario = f"nightly_{key.lower()}"
    app = admin_app.open(page, "alice", "projects")
    projects = app.locator(".hml-admin-projects")
    projects.locator("tr[data-project='FRAUD']").wait_for()

    form = projects.get_by_role("form", name="New project")
    form.get_by_label("Key").fill(key)
    form.get_by_label("Name").fill("Churn study")
    form.get_by_label("Description").fill("Which customers leave, and why.")
    form.get_by_label("Owner").select_option("bob")
    form.get_by_label("Tags").fill("churn, 2026")
    form.get_by_role("button", name="Create project").click()
    row = projects.locator(f"tr[data-project='{key}']")
    row.wait_for()
    assert "Churn study" in row.inner_text() and "bob" in row.inner_text() and "churn, 2026" in row.inner_text()
    described = admin_app.api("alice", "GET", f"projects/{key}").json()
    assert described["owner"] == "bob" and described["tags"] == ["churn", "2026"]
    assert described["description"] == "Which customers leave, and why."

    try:
        row.get_by_role("button", name="Edit…").click()
        editor = projects.get_by_role("form", name=f"Edit {key}")
        editor.get_by_label("Name").fill("Customer churn")
        editor.get_by_label("Owner").select_option("alice")
        editor.get_by_role("button", name="Save").click()
        row.get_by_text("Customer churn").wait_for()
        assert editor.count() == 0  # closed once saved
        described = admin_app.api("alice", "GET", f"projects/{key}").json()
        assert described["name"] == "Customer churn" and described["owner"] == "alice"

        saved = admin_app.api(
            "alice", "POST", f"projects/{key}/scenarios", json={"definition": {"id": scenario, **SCENARIO}}
        )
        assert saved.status_code == 201, saved.text

        # Deleting is refused while the scenario is active: the server's sentence, in place.
        row.get_by_role("button", name="Delete…").click()
        deletion = projects.get_by_role("dialog", name=f"Delete {key}")
        deletion.get_by_role("button", name=f"Delete {key}").click()
        refusal = deletion.get_by_role("alert")
        refusal.wait_for()
        assert f"Project {key} has active scenarios ({scenario})" in refusal.inner_text()
        assert "archive it first" in refusal.inner_text()
        shoot(page, f"admin-projects-{admin_app.host}-refused")
        deletion.get_by_role("button", name="Cancel").click()
        assert admin_app.api("alice", "GET", f"projects/{key}").status_code == 200

        # Archiving says which scenarios it deactivates before confirming.
        row.get_by_role("button", name="Archive…").click()
        archiving = projects.get_by_role("dialog", name=f"Archive {key}")
        listed = archiving.get_by_role("list", name=f"Active scenarios of {key}")
        listed.wait_for()
        assert scenario in listed.inner_text() and "Nightly settings" in listed.inner_text()
        assert "deactivates its scenarios" in archiving.inner_text()
        archiving.get_by_role("button", name=f"Archive {key}").click()
        projects.locator(f"tr[data-project='{key}'][data-status='archived']").wait_for()
        assert "its scenarios are inactive" in projects.get_by_role("status").inner_text()
        assert admin_app.api("alice", "GET", f"projects/{key}/scenarios/{scenario}").json()["active"] is False

        row.get_by_role("button", name="Unarchive").click()
        projects.locator(f"tr[data-project='{key}'][data-status='active']").wait_for()
        assert admin_app.api("alice", "GET", f"projects/{key}").json()["status"] == "active"
        assert admin_app.api("alice", "GET", f"projects/{key}/scenarios/{scenario}").json()["active"] is False

        # A stored bundle version is the next refusal; the page offers to delete those with it.
        bundle = admin_app.api("alice", "POST", f"projects/{key}/bundles", json={"note": "before deleting"})
        assert bundle.status_code == 201, bundle.text
        row.get_by_role("button", name="Delete…").click()
        deletion.get_by_role("button", name=f"Delete {key}").click()
        deletion.get_by_role("alert").get_by_text("bundle version(s)").wait_for()
        assert admin_app.api("alice", "GET", f"projects/{key}").status_code == 200
        deletion.get_by_label("Also delete its bundle versions").check()
        deletion.get_by_role("button", name=f"Delete {key}").click()
        row.wait_for(state="detached")
        assert f"Deleted {key}." in projects.get_by_role("status").inner_text()
    finally:
        if admin_app.api("alice", "GET", f"projects/{key}").status_code == 200:
            admin_app.api("alice", "PATCH", f"projects/{key}", json={"status": "archived"})
            admin_app.api("alice", "DELETE", f"projects/{key}", params={"delete_bundles": "true"})
    assert admin_app.api("alice", "GET", f"projects/{key}").status_code == 404


def test_an_empty_project_is_deleted_at_once(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    key = f"E{uuid.uuid4().hex[:6].upper()}"
    made = admin_app.api("alice", "POST", "projects", json={"key": key, "name": "Scratch"})
    assert made.status_code == 201, made.text
    app = admin_app.open(page, "alice", "projects")
    projects = app.locator(".hml-admin-projects")
    row = projects.locator(f"tr[data-project='{key}']")
    row.get_by_role("button", name="Delete…").click()
    projects.get_by_role("dialog", name=f"Delete {key}").get_by_role("button", name=f"Delete {key}").click()
    row.wait_for(state="detached")
    assert admin_app.api("alice", "GET", f"projects/{key}").status_code == 404


def test_an_administrator_issues_a_token_shown_once(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    name = f"notebook-{uuid.uuid4().hex[:6]}"
    app = admin_app.open(page, "alice", "tokens")
    tokens = app.locator(".hml-admin-tokens")
    form = tokens.get_by_role("form", name="New token")
    form.get_by_label("For").select_option("bob")
    form.get_by_label("Name").fill(name)
    form.get_by_label("Expires in days").fill("7")
    form.get_by_label("Project").select_option("FRAUD")
    form.get_by_role("button", name="Issue token").click()

    issued = tokens.get_by_role("region", name="Token issued")
    issued.wait_for()
    assert "it will not be shown again" in issued.inner_text()
    assert "works on FRAUD only" in issued.inner_text()
    value = issued.locator(".hml-admin-token-value").inner_text()
    assert value.startswith("hml_")
    origin = page.evaluate("() => window.location.origin")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
    issued.get_by_role("button", name="Copy").click()
    issued.get_by_role("status").get_by_text("Copied.").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == value
    shoot(page, f"admin-tokens-{admin_app.host}-issued")

    # The list shows it by its prefix, without its value, and the value works as bob.
    listed = admin_app.api("alice", "GET", "tokens", params={"user": "bob"}).json()["items"]
    mine = next(token for token in listed if token["name"] == name)
    assert value.startswith(mine["prefix"]) and mine["project"] == "FRAUD" and mine["expires_at"]
    row = tokens.locator(f"tr[data-token='{mine['id']}']")
    row.wait_for()
    assert value not in row.inner_text()
    me = admin_app.api_base("bob") + "me"
    answered = requests.get(me, headers={"Authorization": f"token {value}"}, timeout=30)
    assert answered.status_code == 200 and answered.json()["login"] == "bob"

    issued.get_by_role("button", name="Done").click()
    issued.wait_for(state="detached")
    assert value not in app.content()  # shown once: gone when dismissed
    app.reload()
    tokens.locator(f"tr[data-token='{mine['id']}']").wait_for()
    assert value not in app.content()
    assert admin_app.api("alice", "DELETE", f"tokens/{mine['id']}").status_code == 204


def test_someone_without_the_permission_gets_no_projects_page(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    refused = admin_app.api("carol", "POST", "projects", json={"key": "CAROLS", "name": "Not allowed"})
    assert refused.status_code == 403
    app = admin_app.open(page, "carol", "projects")
    main = app.locator("main").inner_text()
    assert "needs the permission admin or create_projects" in main or "You may open no page" in main
    assert app.locator(".hml-admin-projects").count() == 0
    nav = app.locator("nav[aria-label='Administration pages']")
    assert nav.get_by_role("link", name="Projects", exact=True).count() == 0


def test_a_project_creator_changes_only_the_projects_he_administers(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    key = f"B{uuid.uuid4().hex[:6].upper()}"
    app = admin_app.open(page, "bob", "projects")
    projects = app.locator(".hml-admin-projects")
    fraud = projects.locator("tr[data-project='FRAUD']")  # bob's analysts contribute to FRAUD
    fraud.wait_for()
    assert "its administrators change it" in fraud.inner_text()
    assert fraud.get_by_role("button").count() == 0

    form = projects.get_by_role("form", name="New project")
    assert form.get_by_label("Owner").count() == 0 and "You will own it." in form.inner_text()
    form.get_by_label("Key").fill(key)
    form.get_by_label("Name").fill("Bob's sandbox")
    form.get_by_role("button", name="Create project").click()
    row = projects.locator(f"tr[data-project='{key}']")
    row.wait_for()
    try:
        assert admin_app.api("alice", "GET", f"projects/{key}").json()["owner"] == "bob"
        row.get_by_role("button", name="Delete…").click()
        projects.get_by_role("dialog", name=f"Delete {key}").get_by_role("button", name=f"Delete {key}").click()
        row.wait_for(state="detached")
    finally:
        admin_app.api("alice", "DELETE", f"projects/{key}")
    assert admin_app.api("alice", "GET", f"projects/{key}").status_code == 404
