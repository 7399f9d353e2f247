"""The Promotion page in both hosts, the two hosts standing for two instances (each its own store
and signing key), as "From a notebook to production" has a design and a production instance.

alice, on the instance the application runs in, sets an instance variable (a text that is not an
object refused before saving, a dangling reference by the server) and sees it saved; copies this
instance's key; is refused a bundle made on the other instance until she trusts that instance's key
from the page; maps its connection to one of this instance's, previews what it changes and imports
it with activation (the project created), then imports the next version, sees a tampered file
refused with the server's sentence, and rolls back to the first version after a confirmation saying
what that changes; once she no longer trusts the key, its stored versions are refused too. carol,
without ``admin``, gets no Promotion page.
"""

import io
import json
import uuid
import zipfile
from collections.abc import Iterator

import pytest

from .conftest import AdminApp, shoot


@pytest.fixture
def design(request: pytest.FixtureRequest, admin_app: AdminApp) -> AdminApp:
    """The other host's instance: where the bundles are made."""
    other = "hub" if admin_app.host == "lab" else "lab"
    made: AdminApp = request.getfixturevalue(f"admin_app_in_{other}")
    return made


@pytest.fixture
def project(design: AdminApp, admin_app: AdminApp) -> Iterator[str]:
    """A project made on the design instance with one dataset on its ``warehouse``; deleted with
    its bundle versions from both instances afterwards."""
    key = f"PR{uuid.uuid4().hex[:6].upper()}"
    made = design.api("alice", "POST", "projects", json={"key": key, "name": "Promoted"})
    assert made.status_code == 201, made.text
    dataset = {"name": "merchants", "connection": "warehouse", "table": "merchants"}
    added = design.api("alice", "POST", f"projects/{key}/datasets", json=dataset)
    assert added.status_code == 201, added.text
    yield key
    for instance in (design, admin_app):
        instance.api("alice", "DELETE", f"projects/{key}", params={"delete_bundles": "true"})
        assert instance.api("alice", "GET", f"projects/{key}").status_code == 404


def make_version(design: AdminApp, key: str, note: str, variables: dict[str, object]) -> bytes:
    """The project's next version on the design instance, with these project variables, as a file."""
    put = design.api("alice", "PUT", f"projects/{key}/variables", json={"variables": variables})
    assert put.status_code == 200, put.text
    created = design.api("alice", "POST", f"projects/{key}/bundles", json={"note": note})
    assert created.status_code == 201, created.text
    version = created.json()["version"]
    downloaded = design.api("alice", "GET", f"projects/{key}/bundles/{version}/download")
    assert downloaded.status_code == 200, downloaded.text
    return downloaded.content


def tampered(bundle: bytes) -> bytes:
    """The same bundle with its definitions altered after signing."""
    source = zipfile.ZipFile(io.BytesIO(bundle))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "definitions.json":
                definitions = json.loads(data)
                definitions["variables"] = {"threshold": 0.01}
                data = json.dumps(definitions).encode()
            archive.writestr(info, data)
    return out.getvalue()


def bundle_file(name: str, content: bytes) -> dict[str, object]:
    return {"name": name, "mimeType": "application/zip", "buffer": content}


def test_an_administrator_promotes_a_bundle_from_another_instance(  # type: ignore[no-untyped-def]
    page, admin_app: AdminApp, design: AdminApp, project: str
) -> None:
    key, marker = project, uuid.uuid4().hex[:6]
    first = make_version(design, key, "first release", {"min_transactions": 1000})
    second = make_version(design, key, "stricter input check", {"min_transactions": 2000})
    design_key = design.api("alice", "GET", "bundle-keys/signing").json()["public_key"]
    own_key = admin_app.api("alice", "GET", "bundle-keys/signing").json()["public_key"]
    assert design_key != own_key

    url = admin_app.api("alice", "GET", "connections/warehouse").json()["params"]["url"]
    target = f"prod_wh_{marker}"
    connection = {"name": target, "type": "sql", "params": {"url": url}}
    created = admin_app.api("alice", "POST", "connections", json=connection)
    assert created.status_code == 201, created.text
    before = admin_app.api("alice", "GET", "variables").json()["variables"]
    try:
        app = admin_app.open(page, "alice", "promotion")
        promotion = app.locator(".hml-admin-promotion")

        # Instance variables: what is not a JSON object is refused before saving; an object is saved.
        variables = promotion.get_by_role("region", name="Instance variables")
        editor = variables.get_by_label("Variables (a JSON object)")
        editor.wait_for()
        editor.fill('["not", "an object"]')
        assert "must be a JSON object" in variables.get_by_role("alert").inner_text()
        assert variables.get_by_role("button", name="Save variables").is_disabled()
        editor.fill(json.dumps({**before, "greeting": f"Hello ${{missing_{marker}}}"}))
        variables.get_by_role("button", name="Save variables").click()  # the server's refusal, in place
        assert f"Unknown variable 'missing_{marker}'" in variables.get_by_role("alert").inner_text()
        assert admin_app.api("alice", "GET", "variables").json()["variables"] == before
        editor.fill(json.dumps({**before, f"company_{marker}": "Himalia Production"}))
        variables.get_by_role("button", name="Save variables").click()
        variables.get_by_role("status").get_by_text("Saved the instance variables.").wait_for()
        stored = admin_app.api("alice", "GET", "variables").json()["variables"]
        assert stored[f"company_{marker}"] == "Himalia Production"
        assert f"company_{marker}" in editor.input_value()  # reloaded from the server's answer

        # This instance's key, to give the instances importing from here.
        keys = promotion.get_by_role("region", name="Bundle keys")
        assert own_key in keys.get_by_role("region", name="This instance's signing key").inner_text()
        keys.locator("tr[data-key='this instance']").wait_for()
        origin = page.evaluate("() => window.location.origin")
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
        keys.get_by_role("button", name="Copy").click()
        keys.get_by_role("status").get_by_text("Copied.").wait_for()
        assert page.evaluate("() => navigator.clipboard.readText()") == own_key

        # A bundle signed by the other instance is refused until its key is trusted.
        importing = promotion.get_by_role("region", name="Import a bundle")
        importing.get_by_label("Bundle file").set_input_files(files=[bundle_file(f"{key}-v1.himalia-bundle", first)])
        importing.get_by_label("Connection warehouse").wait_for()  # read from the file, as its project
        assert importing.get_by_label("Project", exact=True).input_value() == key
        importing.get_by_role("button", name="Preview").click()
        refusal = importing.get_by_role("alert")
        refusal.wait_for()
        assert "which this instance does not trust" in refusal.inner_text()

        trusting = keys.get_by_role("form", name="Trust a key")
        trusting.get_by_label("Name").fill(f"design-{marker}")
        trusting.get_by_label("Public key").fill(design_key)
        trusting.get_by_role("button", name="Trust key").click()
        keys.locator(f"tr[data-key='design-{marker}']").wait_for()
        assert f"Trusted design-{marker}" in keys.get_by_role("status").inner_text()
        trusted = admin_app.api("alice", "GET", "bundle-keys/trusted").json()
        assert any(k["name"] == f"design-{marker}" and k["public_key"] == design_key for k in trusted)

        # Mapped to this instance's connection and previewed: the project would be created.
        importing.get_by_label("Connection warehouse").select_option(target)
        importing.get_by_role("button", name="Preview").click()
        preview = importing.get_by_role("region", name="Preview")
        preview.wait_for()
        assert f"signed by design-{marker}" in preview.inner_text()
        assert f"There is no project {key} here" in preview.inner_text()
        changes = preview.get_by_role("list", name="What it changes").inner_text()
        assert "dataset merchants added" in changes and "variable min_transactions added" in changes
        assert admin_app.api("alice", "GET", f"projects/{key}").status_code == 404  # a preview stores nothing
        shoot(page, f"admin-promotion-{admin_app.host}-preview")

        importing.get_by_role("button", name="Import and activate").click()
        importing.get_by_role("status").get_by_text(f"Imported version 1 of {key}: it is live").wait_for()
        dataset = admin_app.api("alice", "GET", f"projects/{key}/datasets/merchants").json()
        assert dataset["connection"] == target
        versions = promotion.get_by_role("region", name="Versions")
        versions.locator("tr[data-version='1'][data-active='true']").wait_for()

        # A tampered file is refused with the server's sentence; the next version imports.
        importing.get_by_label("Bundle file").set_input_files(
            files=[bundle_file(f"{key}-v2.himalia-bundle", tampered(second))]
        )
        importing.get_by_label("Connection warehouse").select_option(target)
        importing.get_by_role("button", name="Preview").click()
        assert "differs from the SHA-256 the signed manifest lists" in importing.get_by_role("alert").inner_text()

        importing.get_by_label("Bundle file").set_input_files(files=[bundle_file(f"{key}-v2.himalia-bundle", second)])
        importing.get_by_label("Connection warehouse").select_option(target)
        importing.get_by_role("button", name="Preview").click()
        changes = importing.get_by_role("list", name="What it changes").inner_text()
        assert "variable min_transactions changed" in changes and "merchants" not in changes
        importing.get_by_role("button", name="Import and activate").click()
        importing.get_by_role("status").get_by_text(f"Imported version 2 of {key}: it is live").wait_for()
        versions.locator("tr[data-version='2'][data-active='true']").wait_for()
        live = admin_app.api("alice", "GET", f"projects/{key}/variables").json()["variables"]
        assert live == {"min_transactions": 2000}

        # Rolling back to version 1, after a confirmation.
        versions.locator("tr[data-version='1']").get_by_role("button", name="Activate…").click()
        confirming = versions.get_by_role("dialog", name="Activate version 1")
        assert "what it lacks is removed" in confirming.inner_text()
        coming = confirming.get_by_role("list", name="What activating it changes").inner_text()
        assert "variable min_transactions changed" in coming and "merchants" not in coming
        confirming.get_by_role("button", name="Activate version 1").click()
        done = versions.get_by_role("status")
        done.get_by_text(f"Version 1 of {key} is live.").wait_for()
        assert "variable min_transactions changed" in done.get_by_role("list", name="What changed").inner_text()
        versions.locator("tr[data-version='1'][data-active='true']").wait_for()
        assert versions.locator("tr[data-version='2'][data-active='false']").count() == 1
        live = admin_app.api("alice", "GET", f"projects/{key}/variables").json()["variables"]
        assert live == {"min_transactions": 1000}
        listed = admin_app.api("alice", "GET", f"projects/{key}/bundles").json()
        assert [(b["version"], b["active"], b["connection_map"]) for b in listed] == [
            (1, True, {"warehouse": target}),
            (2, False, {"warehouse": target}),
        ]
        shoot(page, f"admin-promotion-{admin_app.host}-rolled-back")

        # No longer trusting the design key: its stored versions are refused too, said before confirming.
        row = keys.locator(f"tr[data-key='design-{marker}']")
        row.get_by_role("button", name="Untrust…").click()
        row.get_by_role("group", name=f"Untrust design-{marker}").get_by_role(
            "button", name=f"Untrust design-{marker}"
        ).click()
        row.wait_for(state="detached")
        assert keys.locator("tr[data-key='this instance'] button").count() == 0  # its own key stays trusted
        trusted = admin_app.api("alice", "GET", "bundle-keys/trusted").json()
        assert all(k["public_key"] != design_key for k in trusted)
        versions.locator("tr[data-version='2']").get_by_role("button", name="Activate…").click()
        refused = versions.get_by_role("dialog", name="Activate version 2").get_by_role("alert")
        assert "It would be refused" in refused.inner_text() and "does not trust" in refused.inner_text()
    finally:
        admin_app.api("alice", "PUT", "variables", json={"variables": before})
        admin_app.api("alice", "DELETE", f"projects/{key}", params={"delete_bundles": "true"})
        admin_app.api("alice", "DELETE", f"connections/{target}")


def test_someone_without_admin_gets_no_promotion_page(page, admin_app: AdminApp) -> None:  # type: ignore[no-untyped-def]
    refused = admin_app.api("carol", "PUT", "variables", json={"variables": {"x": 1}})
    assert refused.status_code == 403
    assert admin_app.api("carol", "GET", "bundle-keys/trusted").status_code == 403
    app = admin_app.open(page, "carol", "promotion")
    main = app.locator("main").inner_text()
    assert "needs the permission admin" in main or "You may open no page" in main
    assert app.locator(".hml-admin-promotion").count() == 0
    nav = app.locator("nav[aria-label='Administration pages']")
    assert nav.get_by_role("link", name="Promotion", exact=True).count() == 0
