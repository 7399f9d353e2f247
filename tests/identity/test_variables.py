"""Variable scopes and ``${name}`` expansion."""

import pytest

from himalia.core.errors import InvalidInput
from himalia.core.variables import expand, merge_scopes, resolve
from himalia.wire.common import Variables

from ..conftest import LiveAPI


def test_narrower_scopes_win_key_by_key() -> None:
    instance = {"region": "eu", "company": "ACME", "limit": 10}
    project = {"limit": 100, "title": "${company} in ${region}"}
    scenario = {"region": "us"}
    run = {"limit": 5}
    assert merge_scopes(instance, project, scenario, run) == {
        "region": "us",
        "company": "ACME",
        "limit": 5,
        "title": "${company} in ${region}",
    }
    assert resolve(instance, project, scenario, run)["title"] == "ACME in us"


def test_expansion_is_recursive_typed_and_escapable() -> None:
    variables = {"day": "2026-01-01", "path": "/data/${day}", "ids": [1, 2], "nested": {"a": "${path}"}}
    assert expand({"file": "${path}/x.csv", "q": "id in ${ids}", "raw": "$${day}"}, variables) == {
        "file": "/data/2026-01-01/x.csv",
        "q": "id in [1, 2]",
        "raw": "${day}",
    }
    assert expand("${nested}", variables) == '{"a": "/data/2026-01-01"}'


def test_unknown_and_cyclic_references_are_named() -> None:
    with pytest.raises(InvalidInput, match="Unknown variable 'missing'") as unknown:
        expand("${missing}", {})
    assert unknown.value.field == "missing"
    with pytest.raises(InvalidInput, match="cycle"):
        resolve({"a": "${b}", "b": "${a}"})


def test_project_variables_over_http(api: LiveAPI) -> None:
    assert api.request("PUT", "/variables", role="admin", json={"variables": {"company": "ACME"}}).ok
    put = api.request("PUT", "/projects/ALPHA/variables", role="contributor", json={"variables": {"t": "${company}!"}})
    assert put.status_code == 200
    raw = api.request("GET", "/projects/ALPHA/variables", role="reader").json()
    assert raw == {"variables": {"t": "${company}!"}}
    resolved = api.request("GET", "/projects/ALPHA/variables?resolved=true", role="reader").json()
    assert resolved == {"variables": {"company": "ACME", "t": "ACME!"}}
    dangling = api.request("PUT", "/projects/ALPHA/variables", role="contributor", json={"variables": {"x": "${nope}"}})
    assert dangling.status_code == 400 and dangling.json()["field"] == "nope"
    not_an_object = api.request("PUT", "/projects/ALPHA/variables", role="contributor", json={"variables": [1]})
    assert not_an_object.status_code == 400 and not_an_object.json()["field"] == "variables"
    # Nothing stored was lost by the refused writes.
    assert api.request("GET", "/projects/ALPHA/variables", role="reader").json() == raw


def test_model_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        Variables.model_validate({"variables": {}, "typo": 1})


def test_nested_references_cannot_blow_up() -> None:
    laughs = {f"v{level}": f"${{v{level + 1}}}" * 20 for level in range(9)} | {"v9": "lol"}
    with pytest.raises(InvalidInput, match="more than 1,000,000 characters"):
        resolve(laughs)
