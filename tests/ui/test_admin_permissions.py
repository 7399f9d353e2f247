"""The Permissions page, in both hosts: an administrator changes a group's grant on a project and
sees it on the grid, for the group and for its members, with where each permission comes from;
asks why someone cannot do something; someone else gets neither the page nor the grid."""

import uuid

from .conftest import AdminApp, shoot


def test_an_administrator_edits_a_groups_grant_and_sees_it_on_the_grid(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    key = f"GRID_{uuid.uuid4().hex[:6].upper()}"
    created = admin_app.api("alice", "POST", "projects", json={"key": key, "name": "Access review"})
    assert created.status_code == 201, created.text

    app = admin_app.open(page, "alice", "permissions")
    permissions = app.locator("section[aria-label='Permissions']")
    permissions.get_by_role("radio", name="Groups").click()
    readers = permissions.locator(f"tr[data-subject='readers'] td[data-project='{key}'] button")
    assert readers.inner_text().strip() == "·"  # nothing granted yet
    readers.click()

    detail = permissions.locator(f"section[aria-label='readers on {key}']")
    assert "Nothing is granted here." in detail.inner_text()
    grant = detail.locator("form[aria-label='Grant']")
    grant.get_by_label("Preset").select_option("launcher")
    grant.get_by_role("button", name="Save grant").click()
    grant.get_by_role("status").filter(has_text="Saved").wait_for()
    readers.filter(has_text="launcher").wait_for()
    sources = detail.locator("table[aria-label='Where each permission comes from']")
    assert "a grant to the group readers" in sources.locator("tr[data-permission='run_scenarios']").inner_text()
    shoot(page, f"admin-permissions-{admin_app.host}-group")

    # Its members hold it through the group: carol's row says so.
    permissions.get_by_role("radio", name="People").click()
    carol = permissions.locator(f"tr[data-subject='carol'] td[data-project='{key}'] button")
    carol.filter(has_text="launcher").wait_for()
    carol.click()
    through = permissions.locator(f"section[aria-label='carol on {key}']")
    assert "a grant to the group readers" in through.inner_text()
    assert "holds no grant of their own" in through.locator("form[aria-label='Grant']").inner_text()
    owner = permissions.locator(f"tr[data-subject='alice'] td[data-project='{key}'] button")
    assert owner.inner_text().strip().startswith("admin")

    # Custom permissions for the group: export brings read content and dashboards with it.
    permissions.get_by_role("radio", name="Groups").click()
    readers.click()
    grant = permissions.locator(f"section[aria-label='readers on {key}'] form[aria-label='Grant']")
    grant.get_by_label("Preset").select_option("custom")
    grant.get_by_label("run scenarios").uncheck()
    grant.get_by_label("export datasets").check()
    grant.get_by_role("button", name="Save grant").click()
    readers.filter(has_text="DRE").wait_for()
    assert grant.get_by_label("read content").is_checked()  # the form shows the grant as stored
    held = admin_app.api("alice", "GET", f"projects/{key}/grants").json()
    assert {"principal_type": "group", "principal": "readers", "preset": None,
            "permissions": ["read_dashboards", "read_content", "export_datasets"]} in held  # fmt: skip

    # Why can't carol run the scenarios now?
    explain = permissions.locator('section[aria-label="Why can\'t someone"]')
    explain.get_by_label("Person").fill("carol")
    explain.get_by_label("Permission").select_option("run_scenarios")
    explain.get_by_label("Project").select_option(key)
    explain.get_by_role("button", name="Explain").click()
    answer = explain.locator(".hml-admin-answer[data-granted='false']")
    answer.wait_for()
    assert f"carol does not hold 'run_scenarios' on {key}" in answer.inner_text()
    assert f"himalia project grant {key} --user carol" in answer.inner_text()
    shoot(page, f"admin-permissions-{admin_app.host}-explain")

    # Removing the grant empties the cell, on the grid and in the store.
    readers.click()
    permissions.locator(f"section[aria-label='readers on {key}']").get_by_role("button", name="Remove grant").click()
    readers.filter(has_text="·").wait_for()
    assert all(g["principal"] != "readers" for g in admin_app.api("alice", "GET", f"projects/{key}/grants").json())


def test_a_groups_global_admin_shows_on_every_project(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    """Switched on the Groups page, a group's global admin fills its row of the grid, and off empties it."""
    group = f"grid-{uuid.uuid4().hex[:6]}"
    created = admin_app.api("alice", "POST", "groups", json={"name": group, "description": "Access review"})
    assert created.status_code == 201, created.text
    projects = [p["key"] for p in admin_app.api("alice", "GET", "auth-matrix/grid").json()["projects"]]
    try:
        app = admin_app.open(page, "alice", "groups")
        toggles = app.locator(f"section[data-group='{group}'] fieldset[aria-label='Global permissions of {group}']")
        toggles.locator("input[name='admin']").click()
        toggles.locator("input[name='admin']:checked").wait_for()

        app.locator(".hml-admin-nav").get_by_role("link", name="Permissions").click()
        permissions = app.locator("section[aria-label='Permissions']")
        permissions.get_by_role("radio", name="Groups").click()
        row = permissions.locator(f"tr[data-subject='{group}']")
        row.locator(".hml-admin-tag", has_text="administrator").wait_for()
        assert [cell.inner_text().strip() for cell in row.locator("td button").all()] == ["admin ★"] * len(projects)
        row.locator(f"td[data-project='{projects[0]}'] button").click()
        detail = permissions.locator(f"section[aria-label='{group} on {projects[0]}']")
        assert f"the global permission admin, through the group {group}" in detail.inner_text()
        shoot(page, f"admin-permissions-{admin_app.host}-global")

        app.locator(".hml-admin-nav").get_by_role("link", name="Groups").click()
        toggles.locator("input[name='admin']:checked").click()
        toggles.locator("input[name='admin']:not(:checked)").wait_for()
        app.locator(".hml-admin-nav").get_by_role("link", name="Permissions").click()
        permissions.get_by_role("radio", name="Groups").click()
        row.locator("td button").first.wait_for()
        assert {cell.inner_text().strip() for cell in row.locator("td button").all()} == {"·"}
    finally:
        admin_app.api("alice", "DELETE", f"groups/{group}")


def test_someone_else_gets_neither_the_page_nor_the_grid(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    # carol, a reader, may open no page (bob, an analyst, may create projects: he has the Projects page).
    assert admin_app.api("carol", "GET", "auth-matrix/grid").status_code == 403
    app = admin_app.open(page, "carol", "permissions")
    no_page = app.locator("section[aria-label='No page']")
    no_page.wait_for()
    assert "admin" in no_page.locator("tr", has_text="Permissions").inner_text()
    assert app.locator("section[aria-label='Permissions']").count() == 0
