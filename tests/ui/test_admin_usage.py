"""The Usage and cost page, in both hosts.

The hub (here: alice, an administrator, who manages tiers) starts a server of bob's for the
project FRAUD on a tier of its own and stops it; the page shows bob and FRAUD in this month's totals, as tables and
bar charts, and its CSV export, downloaded by clicking its link, lists them. An administrator
sets a budget for FRAUD from the page (a refused amount is said), changes it and removes it.
"""

import uuid
from pathlib import Path

from .conftest import AdminApp, shoot


def test_the_usage_page_totals_exports_and_sets_budgets(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    app = admin_app.open(page, "alice", "usage")  # at the hub, signing in makes alice an administrator here
    tier = admin_app.api("alice", "PUT", "tiers/ui-usage", json={"cost_per_hour": 1.5})
    assert tier.status_code == 200, tier.text
    server = f"ui-{uuid.uuid4().hex[:6]}"
    body = {"user": "bob", "tier": "ui-usage", "server_name": server, "project": "FRAUD"}
    started = admin_app.api("alice", "POST", "servers", json=body)
    assert started.status_code == 201, started.text
    assert admin_app.api("alice", "DELETE", f"servers/{started.json()['id']}").status_code == 200
    for budget in admin_app.api("alice", "GET", "budgets").json():  # left by the other host's run
        if budget["project"] == "FRAUD":
            admin_app.api("alice", "DELETE", f"budgets/{budget['id']}")

    app.reload()
    usage = app.locator(".hml-admin-usage")
    usage.locator("section[data-by='user'] tr[data-key='bob']").wait_for()
    usage.locator("section[data-by='project'] tr[data-key='FRAUD']").wait_for()
    assert usage.locator("section[data-by='project'] svg[role='img'] g[data-bar='FRAUD']").count() == 1
    month = usage.locator("input[name=month]").input_value()
    assert usage.locator(f"section[data-by='month'] tr[data-key='{month}']").count() == 1

    with app.expect_download() as downloading:  # a click, as people download it (the session's cookie)
        usage.get_by_role("link", name=f"Export {month} as CSV").click()
    download = downloading.value
    assert download.suggested_filename == "himalia-usage.csv"
    text = Path(download.path()).read_text()
    assert text.startswith("month,tier,user,project,hours,cost,currency")
    assert any(line.split(",")[2:4] == ["bob", "FRAUD"] for line in text.splitlines())

    budgets = usage.locator("section.hml-usage-budgets")
    form = budgets.locator("form[aria-label='New budget']")
    form.locator("select[name=kind]").select_option("project")
    form.locator("input[name=subject]").fill("FRAUD")
    form.locator("input[name=amount]").fill("-5")
    form.get_by_role("button", name="Set budget").click()
    refusal = form.locator(".hml-admin-refusal")
    refusal.wait_for()
    assert "amount" in refusal.inner_text()

    form.locator("input[name=amount]").fill("250")
    form.get_by_role("button", name="Set budget").click()
    row = budgets.locator("tr[data-budget]", has_text="project FRAUD")
    row.filter(has_text="250.00 USD").wait_for()
    shoot(page, f"admin-usage-{admin_app.host}")

    row.get_by_role("button", name="Change").click()
    row.locator("input[name=amount]").fill("300")
    row.get_by_role("button", name="Save").click()
    row.filter(has_text="300.00 USD").wait_for()
    [saved] = [b for b in admin_app.api("alice", "GET", "budgets").json() if b["project"] == "FRAUD"]
    assert saved["amount"] == 300

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Remove").click()
    row.wait_for(state="detached")
    assert not [b for b in admin_app.api("alice", "GET", "budgets").json() if b["project"] == "FRAUD"]
