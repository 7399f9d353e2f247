"""Editing and deleting a scenario through the REST API, as the lab's scenario editor does:
the YAML comes from ``…/export``, goes back with ``PUT {yaml}``, and every refusal says why."""

from typing import Any

from himalia.identity.audit import AuditFilter
from himalia.identity.caller import Caller

from ..conftest import LiveAPI

NIGHTLY = "/projects/ALPHA/scenarios/nightly"


def test_the_exported_yaml_saves_back_as_a_new_revision(api: LiveAPI) -> None:
    exported = api.request("GET", NIGHTLY + "/export", role="contributor")
    assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("application/yaml")
    text = exported.text
    assert text.startswith("# Scenario ALPHA/nightly, revision 1") and "\nid: nightly\nname: Nightly checks\n" in text

    edited = text.replace("name: Nightly checks", "name: Nightly checks, edited")
    saved = api.request("PUT", NIGHTLY, role="contributor", json={"yaml": edited})
    assert saved.status_code == 200, saved.text
    assert (saved.json()["name"], saved.json()["revision"]) == ("Nightly checks, edited", 2)
    assert "name: Nightly checks, edited\n" in api.request("GET", NIGHTLY + "/export").text


def test_a_bad_edit_is_refused_with_its_line_and_field(api: LiveAPI) -> None:
    text = api.request("GET", NIGHTLY + "/export").text
    line = next(i for i, text_line in enumerate(text.splitlines(), start=1) if "schedule: daily" in text_line)
    broken = text.replace("schedule: daily at 02:00", "schedule: whenever it likes")
    refused = api.request("PUT", NIGHTLY, role="contributor", json={"yaml": broken})
    assert refused.status_code == 400
    assert refused.json()["message"].startswith(f"yaml:{line}: triggers[0].schedule: "), refused.json()
    assert refused.json()["field"] == "triggers[0].schedule"
    unparsable = api.request("PUT", NIGHTLY, role="contributor", json={"yaml": text + "steps: [\n"})
    assert unparsable.status_code == 400 and "not valid YAML" in unparsable.json()["message"]
    assert api.request("GET", NIGHTLY).json()["revision"] == 1  # nothing saved


def test_a_refusal_found_after_parsing_names_its_line_too(api: LiveAPI) -> None:
    text = api.request("GET", NIGHTLY + "/export").text
    line = next(i for i, text_line in enumerate(text.splitlines(), start=1) if "dataset: transactions" in text_line)
    missing = api.request("PUT", NIGHTLY, role="contributor", json={"yaml": text.replace("transactions", "ghosts")})
    assert missing.status_code == 400
    assert missing.json() == {
        "status": 400,
        "message": f"yaml:{line}: steps[0].dataset: there is no dataset 'ghosts' in ALPHA.",
        "field": "steps[0].dataset",
    }
    definition = {"id": "nightly", "name": "N", "steps": [{"name": "C", "type": "run_checks", "dataset": "ghosts"}]}
    as_json = api.request("PUT", NIGHTLY, role="contributor", json={"definition": definition})
    assert as_json.json()["message"] == "steps[0].dataset: there is no dataset 'ghosts' in ALPHA."  # no text, no line


def test_editing_is_refused_before_the_yaml_is_read(api: LiveAPI) -> None:
    """A reader's or a stranger's edit gets its permission refusal, never a parse error of its body."""
    not_yaml = {"yaml": "steps: [\n"}
    reader = api.request("PUT", NIGHTLY, role="reader", json=not_yaml)
    assert reader.status_code == 403 and "write_content" in reader.json()["message"]
    assert api.request("PUT", NIGHTLY, role="nogrant", json=not_yaml).status_code == 404
    assert api.request("PUT", NIGHTLY, role="anonymous", json=not_yaml).status_code == 401
    assert api.request("GET", NIGHTLY).json()["revision"] == 1


def _delete(api: LiveAPI, role: str = "contributor") -> Any:
    return api.request("DELETE", NIGHTLY, role=role)


def test_delete_refusals_then_the_scenario_goes_with_its_runs(api: LiveAPI, plane: Any) -> None:
    assert _delete(api, "reader").status_code == 403
    assert _delete(api, "nogrant").status_code == 404
    assert _delete(api, "anonymous").status_code == 401
    assert api.request("DELETE", "/projects/ALPHA/scenarios/ghost", role="contributor").status_code == 404

    queued = api.request("POST", NIGHTLY + "/run", role="contributor", json={})
    assert queued.status_code == 201
    running = _delete(api)
    assert running.status_code == 409
    assert running.json()["message"] == f"Run #{queued.json()['id']} of 'nightly' is not finished: abort it first."
    api.request("POST", f"{NIGHTLY}/runs/{queued.json()['id']}/abort", role="contributor")

    after = {
        "id": "follower",
        "name": "Follower",
        "steps": [{"name": "Check", "type": "run_checks", "dataset": "transactions"}],
        "triggers": [{"type": "after_scenario", "scenario": "nightly"}],
    }
    assert api.request("POST", "/projects/ALPHA/scenarios", json={"definition": after}).status_code == 201
    depended = _delete(api)
    assert depended.status_code == 409
    assert depended.json()["message"] == "Scenario 'follower' fires after 'nightly': change it first."
    assert api.request("DELETE", "/projects/ALPHA/scenarios/follower").status_code == 204

    assert _delete(api).status_code == 204
    assert api.request("GET", NIGHTLY).status_code == 404
    assert api.request("GET", NIGHTLY + "/runs/1").status_code == 404
    audit_filter = AuditFilter(action="scenario.delete", object_id="nightly")
    entries = plane.audit.list_entries(Caller.operator("test"), audit_filter, 10, 0).items
    assert len(entries) == 1 and entries[0].details == {"revision": 1, "runs_deleted": 2}
