"""Issue 14 as carol sees it: a reader of FRAUD who may not use the warehouse connection previews
a dataset's first rows in the Data quality section, and the README's notebook line reads it in a
kernel of her lab, the project coming from her choice in the sidebar."""

import os
import subprocess
import sys

from .conftest import Lab, choose_project, expand, open_himalia, shoot


def test_a_reader_previews_and_reads_a_dataset_through_the_platform(page, reader_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    sidebar = open_himalia(page, reader_lab)
    choose_project(sidebar, "FRAUD")
    quality = expand(sidebar, "Data quality")
    row = quality.locator("[data-dataset='transactions_2018']")
    row.wait_for()
    row.locator(".hml-row-main").click()
    table = quality.locator("table[aria-label='First rows']")
    table.wait_for()
    assert table.locator("tbody tr").count() == 20
    assert "purchase_amount" in table.locator("thead").inner_text()
    assert "more exist" in quality.locator(".hml-dq-preview").inner_text()
    shoot(page, "reader-first-rows")

    # carol may not fetch the warehouse's credentials...
    assert reader_lab.api("GET", "connections/warehouse/credentials").status_code in (403, 404)
    # ...and the README's line works in her kernel all the same, with no project named anywhere.
    environment = {name: value for name, value in os.environ.items() if not name.startswith("HIMALIA_")}
    environment |= {"HIMALIA_API_URL": f"{reader_lab.url}himalia/api/v1", "HIMALIA_TOKEN": reader_lab.token}
    program = "import himalia\nprint(len(himalia.dataset('transactions_2018').to_pandas(limit=50)))"
    finished = subprocess.run(
        [sys.executable, "-c", program], env=environment, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "50"
