"""The Projects section: the demo project, choosing it, creating one, grants by permission."""

from .conftest import Lab, choose_project, expand, open_himalia, shoot


def test_the_demo_project_is_listed_and_chosen(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    sidebar = open_himalia(page, admin_lab)
    projects = expand(sidebar, "Projects")
    projects.locator("[data-project='FRAUD']").wait_for()
    choose_project(sidebar, "FRAUD")
    details = projects.locator("section[aria-label='Project FRAUD']")
    assert "Credit card fraud" in details.inner_text()
    assert "admin" in details.locator(".hml-my-permissions").inner_text()
    grants = details.locator("table.hml-grants")
    assert "readers" in grants.inner_text() and "reader" in grants.inner_text()
    shoot(page, "projects")


def test_create_a_project_and_grant_it(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    sidebar = open_himalia(page, admin_lab)
    projects = expand(sidebar, "Projects")
    projects.get_by_role("button", name="New project").click()
    form = projects.locator("form[aria-label='New project']")
    form.locator("input[name='key']").fill("CHURN")
    form.locator("input[name='name']").fill("Customer churn")
    form.locator("textarea[name='description']").fill("Who leaves, and why.")
    form.locator("input[name='tags']").fill("demo, retention")
    form.get_by_role("button", name="Create").click()
    details = projects.locator("section[aria-label='Project CHURN']")
    details.wait_for()
    assert projects.locator("[data-project='CHURN']").is_visible()

    grant = details.locator("form[aria-label='Grant']")
    grant.get_by_label("Group name").fill("analysts")
    grant.get_by_label("Preset").select_option("launcher")
    grant.get_by_role("button", name="Grant").click()
    details.locator("table.hml-grants tr", has_text="analysts").wait_for()
    assert "launcher" in details.locator("table.hml-grants tr", has_text="analysts").inner_text()

    refused = details.locator("form[aria-label='Grant']")
    refused.get_by_label("Group name").fill("nobody-has-this-group")
    refused.get_by_role("button", name="Grant").click()
    details.locator(".hml-error").wait_for()
    assert "nobody-has-this-group" in details.locator(".hml-error").inner_text()
    shoot(page, "projects-created")

    created = admin_lab.api("GET", "projects/CHURN").json()
    assert created["name"] == "Customer churn" and created["tags"] == ["demo", "retention"]
