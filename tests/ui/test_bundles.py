"""The Projects section's bundles: an administrator creates a version and downloads its file."""

import zipfile
from io import BytesIO

from .conftest import Lab, choose_project, expand, open_himalia, shoot


def test_create_and_download_a_bundle(page, admin_lab: Lab) -> None:  # type: ignore[no-untyped-def]
    sidebar = open_himalia(page, admin_lab)
    projects = expand(sidebar, "Projects")
    projects.locator("[data-project='FRAUD']").wait_for()
    choose_project(sidebar, "FRAUD")
    bundles = projects.locator("section[aria-label='Bundles']")
    bundles.wait_for()
    form = bundles.locator("form[aria-label='Create a bundle']")
    form.get_by_label("Bundle note").fill("promoted from the lab")
    form.get_by_role("button", name="Create bundle").click()
    row = bundles.locator("li.hml-bundle", has_text="promoted from the lab")
    row.wait_for()
    assert "v1" in row.inner_text() and "datasets" in row.inner_text()
    with page.expect_download() as started:
        row.get_by_role("link", name="Download version 1").click()
    download = started.value
    assert download.suggested_filename == "FRAUD-v1.himalia-bundle"
    with zipfile.ZipFile(BytesIO(open(download.path(), "rb").read())) as archive:
        assert {"manifest.json", "manifest.sig", "definitions.json"} <= set(archive.namelist())
    shoot(page, "project-bundles")
    listed = admin_lab.api("GET", "projects/FRAUD/bundles").json()
    assert [(b["version"], b["note"]) for b in listed] == [(1, "promoted from the lab")]
