"""A project promoted from a design instance (SQLite) to a production instance (PostgreSQL).

Created on design, imported on production with its connection remapped, its scenario run there
through the engine (a real notebook), changed on design and imported again (the difference names
the change), rolled back; an activation refused half-way changes nothing.
"""

import time
from pathlib import Path

import pytest

from himalia.bundles.format import BundleRefused
from himalia.controlplane import ControlPlane
from himalia.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from himalia.identity.audit import AuditFilter
from himalia.wire.bundles import BundlePreview, TrustKey
from himalia.wire.common import Variables
from himalia.wire.data import CheckSpec
from himalia.wire.identity import UpdateProject
from himalia.wire.scenarios import RunRequest

from ..conftest import LiveAPI
from ..scenarios.conftest import start_engine
from .conftest import PROJECT, trust

pytestmark = pytest.mark.postgres

MAPPING = {"wh_secret": "prod_wh"}


def changes(preview: BundlePreview) -> set[tuple[str, str, str]]:
    return {(c.kind, c.name, c.change) for c in preview.changes}


def bundle_file(plane: ControlPlane, version: int) -> bytes:
    return plane.bundles.download(plane.users.caller_for("admin"), PROJECT, version)[1]


def run_on(plane: ControlPlane, tmp_path: Path, templates: dict) -> str:
    """Run FRAUD's scenario on ``plane`` through its engine; the run's final state."""
    api = LiveAPI(plane, templates["postgresql"][1]).start()
    try:
        start_engine(plane, api, tmp_path, warm=0)
        admin = plane.users.caller_for("admin")
        run = plane.runs.request_run(admin, PROJECT, "score", RunRequest())
        deadline = time.monotonic() + 120
        while (state := plane.runs.get_run(admin, PROJECT, "score", run.id)).state in ("queued", "running"):
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert state.state == "succeeded", state.model_dump()
        log = plane.runs.read_log(admin, PROJECT, "score", run.id)[0]
        assert "scored 6 with 2 rates" in log, log  # the module and the CSV came with the bundle
        return str(state.state)
    finally:
        api.stop()


def test_a_project_is_promoted_run_changed_and_rolled_back(
    design: ControlPlane, production: ControlPlane, tmp_path: Path, templates: dict
) -> None:
    a_admin, b_admin = design.users.caller_for("admin"), production.users.caller_for("admin")
    first = design.bundles.create_bundle(a_admin, PROJECT, note="first cut")
    assert (first.version, first.datasets, first.scenarios, first.origin) == (1, 1, 1, "created")
    content = bundle_file(design, 1)
    assert design.scenarios.get_scenario(a_admin, PROJECT, "score").files.files == 3  # the notebook's folder

    with pytest.raises(BundleRefused) as untrusted:
        production.bundles.preview(b_admin, PROJECT, content, MAPPING)
    assert untrusted.value.field == "manifest.sig" and "does not trust" in untrusted.value.message
    trust(production, design)

    with pytest.raises(InvalidInput) as unmapped:
        production.bundles.preview(b_admin, PROJECT, content, {})
    assert unmapped.value.field == "datasets[0].connection"
    assert "wh_secret" in unmapped.value.message and "--map-connection" in unmapped.value.message

    preview = production.bundles.preview(b_admin, PROJECT, content, MAPPING)
    assert not preview.project_exists and not preview.stored
    assert changes(preview) == {
        ("project", PROJECT, "added"),
        ("dataset", "tx", "added"),
        ("check", "tx/Some rows", "added"),
        ("scenario", "score", "added"),
        ("variable", "threshold", "added"),
    }
    with pytest.raises(NotFound):  # a preview stores nothing
        production.projects.get_project(b_admin, PROJECT)

    imported = production.bundles.import_bundle(b_admin, PROJECT, content, MAPPING, activate=True)
    assert imported.activated and imported.bundle.signer == "design"
    dataset = production.datasets.get_dataset(b_admin, PROJECT, "tx")
    assert (dataset.connection, dataset.table) == ("prod_wh", "transactions_2018")
    assert production.projects.get_project(b_admin, PROJECT).owner == "admin"
    assert production.variables.get_project(b_admin, PROJECT, False).variables == {"threshold": 0.7}
    assert run_on(production, tmp_path, templates) == "succeeded"

    design.checks.save_check(
        a_admin,
        PROJECT,
        "tx",
        CheckSpec(name="Some rows", type="range", metric="record_count", min=50),
        replace="Some rows",
    )
    design.variables.set_project(a_admin, PROJECT, Variables(variables={"threshold": 0.9, "region": "eu"}))
    assert design.bundles.create_bundle(a_admin, PROJECT, note="stricter").version == 2
    second = production.bundles.import_bundle(b_admin, PROJECT, bundle_file(design, 2), MAPPING, activate=True)
    assert changes(second) == {
        ("check", "tx/Some rows", "changed"),
        ("variable", "region", "added"),
        ("variable", "threshold", "changed"),
    }
    assert production.checks.get_check(b_admin, PROJECT, "tx", "Some rows").min == 50

    rolled = production.bundles.activate(b_admin, PROJECT, 1)
    assert changes(rolled) == {
        ("check", "tx/Some rows", "changed"),
        ("variable", "region", "removed"),
        ("variable", "threshold", "changed"),
    }
    assert production.variables.get_project(b_admin, PROJECT, False).variables == {"threshold": 0.7}
    assert production.checks.get_check(b_admin, PROJECT, "tx", "Some rows").min == 10
    listed = production.bundles.list_bundles(b_admin, PROJECT)
    assert [(b.version, b.origin, b.active) for b in listed] == [(1, "imported", True), (2, "imported", False)]
    assert listed[0].connection_map == MAPPING

    actions = [e.action for e in production.audit.list_entries(b_admin, AuditFilter(project=PROJECT), 100, 0).items]
    assert {"bundle.preview", "bundle.import", "bundle.activate", "project.create"} <= set(actions)


def test_an_activation_refused_half_way_changes_nothing(design: ControlPlane, production: ControlPlane) -> None:
    a_admin, b_admin = design.users.caller_for("admin"), production.users.caller_for("admin")
    trust(production, design)
    design.bundles.create_bundle(a_admin, PROJECT)
    production.bundles.import_bundle(b_admin, PROJECT, bundle_file(design, 1), MAPPING, activate=True)
    production.runs.request_run(b_admin, PROJECT, "score", RunRequest())  # queued: no engine runs it
    design.scenarios.delete_scenario(a_admin, PROJECT, "score")
    design.variables.set_project(a_admin, PROJECT, Variables(variables={"threshold": 0.1}))
    design.bundles.create_bundle(a_admin, PROJECT)
    with pytest.raises(Conflict, match="abort it first"):
        production.bundles.import_bundle(b_admin, PROJECT, bundle_file(design, 2), MAPPING, activate=True)
    assert production.variables.get_project(b_admin, PROJECT, False).variables == {"threshold": 0.7}
    assert [s.id for s in production.scenarios.list_scenarios(b_admin, PROJECT, 50, 0).items] == ["score"]
    assert [b.version for b in production.bundles.list_bundles(b_admin, PROJECT)] == [1]


def test_importing_needs_admin_on_the_target_and_what_saving_needs(
    design: ControlPlane, production: ControlPlane
) -> None:
    a_admin, b_admin = design.users.caller_for("admin"), production.users.caller_for("admin")
    trust(production, design)
    design.bundles.create_bundle(a_admin, PROJECT)
    content = bundle_file(design, 1)
    contributor = production.users.caller_for("contributor")
    with pytest.raises(NotFound):  # no project here and no create_projects: as if absent
        production.bundles.preview(contributor, PROJECT, content, MAPPING)
    creator = production.users.caller_for("projadmin")  # create_projects, but may not use prod_wh
    with pytest.raises(InvalidInput, match="you may not use the connection 'prod_wh'"):
        production.bundles.preview(creator, PROJECT, content, MAPPING)
    production.bundles.import_bundle(b_admin, PROJECT, content, MAPPING, activate=True)
    with pytest.raises(NotFound):
        production.bundles.activate(contributor, PROJECT, 1)
    with pytest.raises(Forbidden):
        production.bundles.trust_key(contributor, TrustKey(name="x", public_key=design.bundles.public_key().public_key))


def test_project_files_beyond_the_importers_limits_are_refused_naming_the_limit(
    design: ControlPlane, production: ControlPlane
) -> None:
    a_admin, b_admin = design.users.caller_for("admin"), production.users.caller_for("admin")
    trust(production, design)
    design.bundles.create_bundle(a_admin, PROJECT)
    production.scenarios.project_files.max_files = 2  # the notebook's folder holds three files
    with pytest.raises(InvalidInput) as refused:
        production.bundles.import_bundle(b_admin, PROJECT, bundle_file(design, 1), MAPPING, activate=True)
    assert refused.value.field == "scenarios[0].files" and "ProjectFiles.max_files" in refused.value.message
    with pytest.raises(NotFound):
        production.projects.get_project(b_admin, PROJECT)


def test_project_variables_referring_to_instance_variables_the_importer_lacks_are_refused(
    design: ControlPlane, production: ControlPlane
) -> None:
    """Instance variables are not bundled: a reference to one the importer lacks would fail every run."""
    a_admin, b_admin = design.users.caller_for("admin"), production.users.caller_for("admin")
    trust(production, design)
    design.variables.set_instance(a_admin, Variables(variables={"company": "Acme"}))
    design.variables.set_project(a_admin, PROJECT, Variables(variables={"title": "Report for ${company}"}))
    design.bundles.create_bundle(a_admin, PROJECT)
    content = bundle_file(design, 1)
    with pytest.raises(InvalidInput, match=r"variables: Unknown variable 'company'.*not bundled") as refused:
        production.bundles.preview(b_admin, PROJECT, content, MAPPING)
    assert refused.value.field == "variables"
    production.variables.set_instance(b_admin, Variables(variables={"company": "Acme Production"}))
    production.bundles.import_bundle(b_admin, PROJECT, content, MAPPING, activate=True)
    resolved = production.variables.get_project(b_admin, PROJECT, resolved=True).variables
    assert resolved["title"] == "Report for Acme Production"


def test_bundles_go_with_their_project_and_only_an_administrator_revives_an_unactivated_one(
    design: ControlPlane, production: ControlPlane
) -> None:
    """Bundles are keyed by the project's key: none outlives its project for the next owner of the key."""
    a_admin, b_admin = design.users.caller_for("admin"), production.users.caller_for("admin")
    trust(production, design)
    design.bundles.create_bundle(a_admin, PROJECT)
    content = bundle_file(design, 1)
    creator = production.users.caller_for("projadmin")  # create_projects, no admin
    production.bundles.import_bundle(b_admin, PROJECT, content, MAPPING, activate=False)
    with pytest.raises(NotFound):
        production.bundles.activate(creator, PROJECT, 1)
    production.bundles.activate(b_admin, PROJECT, 1)
    production.projects.update_project(b_admin, PROJECT, UpdateProject(status="archived"))  # its scenarios stop
    with pytest.raises(Conflict, match=r"holds 1 bundle version\(s\) \(1, version 1 active\)"):
        production.projects.delete_project(b_admin, PROJECT)
    production.projects.delete_project(b_admin, PROJECT, delete_bundles=True)
    with pytest.raises(NotFound):
        production.bundles.activate(b_admin, PROJECT, 1)
    assert production.bundles.list_bundles(b_admin, PROJECT) == []
    deleted = production.audit.list_entries(b_admin, AuditFilter(action="project.delete"), 10, 0).items
    assert deleted[0].details == {"bundles": 1}
