"""A check on a row condition, as a contributor sees it in the lab: the dataset lists its row
conditions in words, Run checks turns the check red, and the rows that broke it open under it."""

from .conftest import Lab, choose_project, expand, open_himalia, shoot

DATASET = "merchants_by_state"


def test_a_failed_condition_check_shows_the_rows_that_broke_it(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    dataset = {
        "name": DATASET,
        "connection": "warehouse",
        "table": "merchants",
        "probes": ["record_count"],
        "conditions": [
            {"name": "west_coast", "column": "state", "values": ["CA", "WA"]},
            {"name": "merchant_code", "column": "merchant_id", "pattern": "^M\\d{5}$"},
        ],
    }
    created = admin_lab.api("POST", "projects/FRAUD/datasets", json=dataset)
    assert created.status_code == 201, created.text
    for check in (
        {"name": "West coast only", "type": "range", "metric": "invalid_count:west_coast", "max": 0},
        {"name": "Merchant codes", "type": "range", "metric": "invalid_count:merchant_code", "max": 0},
    ):
        saved = admin_lab.api("POST", f"projects/FRAUD/datasets/{DATASET}/checks", json=check)
        assert saved.status_code == 201, saved.text

    sidebar = open_himalia(page, admin_lab)
    choose_project(sidebar, "FRAUD")
    quality = expand(sidebar, "Data quality")
    row = quality.locator(f"[data-dataset='{DATASET}']")
    row.wait_for()
    row.locator(".hml-row-main").click()
    conditions = row.locator("ul[aria-label='Row conditions']")
    conditions.wait_for()
    assert conditions.locator("[data-condition='west_coast']").inner_text() == "west_coast state is one of CA, WA"
    assert "merchant_id matches /^M\\d{5}$/" in conditions.inner_text()

    row.get_by_role("button", name="Run checks").click()
    broken = row.locator("[data-check='West coast only']")
    broken.locator(".hml-badge", has_text="ERROR").wait_for()
    row.locator("[data-check='Merchant codes'] .hml-badge", has_text="OK").wait_for()
    assert row.locator("[data-check='Merchant codes'] .hml-dq-failing").count() == 0  # nothing failed, none kept
    opener = broken.locator("button[data-failing='west_coast']")
    assert opener.inner_text().startswith("10 of ") and opener.inner_text().endswith(" failing rows")
    opener.click()  # the rows open in the main area, not the sidebar
    tab = page.locator(".jp-MainAreaWidget .hml-failing-page")
    table = tab.locator("table[aria-label='Rows that break west_coast']")
    table.wait_for()
    assert page.locator(".lm-TabBar-tab", has_text=f"Failing rows: {DATASET} / West coast only").count() == 1
    about = tab.inner_text()
    assert "(state is one of CA, WA): 10 of " in about and "ERROR" in about and "UTC" in about, about
    assert "state" in table.locator("thead").inner_text()
    states = table.locator("tbody tr td:nth-child(6)").all_inner_texts()
    assert len(states) == 10 and not {"CA", "WA"} & set(states), states
    shoot(page, "data-quality-failing-rows")
