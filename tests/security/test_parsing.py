"""Class 6 (and the JSON/YAML part of 11): parsing bombs, timed, refused before any work.

An attacker with an ordinary account sends YAML alias bombs of several depths and widths, YAML and
JSON nested far deeper than any scenario, documents and bodies larger than the caps, and
scenarios with thousands of steps. Each variant must be a 400 naming the field (and the line, for
YAML) in well under a second, never a 500; and a caller who may not write the project (or who is
not signed in at all) gets 401/403/404 before the server parses anything: a bomb that would be a
400 once parsed is a 404 for a project that does not exist.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from himalia.api.base import MAX_BODY_DEPTH, MAX_BODY_VALUES
from himalia.cli import main
from himalia.core.documents import MAX_DEPTH, MAX_DOCUMENT_CHARS, DocumentError
from himalia.wire.definitions import MAX_STEPS, load_scenario

from ..conftest import LiveAPI
from .conftest import Ledger

ATTACK = "6 parsing bombs"
#: What one refusal may cost at most, in wall-clock seconds: the bombs cost 16 s and more before, a
#: refusal costs about 0.1 s, and a loaded CI machine once took 1.4 s for the largest one.
BOUND = 3.0
SCENARIOS = "/projects/ALPHA/scenarios"

STEP = "  - name: step {index}\n    type: run_checks\n    dataset: transactions\n"


def scenario_yaml(body: str = "", steps: int = 1) -> str:
    """A valid scenario of ``steps`` steps, with ``body`` appended at the top level."""
    return "id: bomb\nname: Bomb\nsteps:\n" + "".join(STEP.format(index=i) for i in range(steps)) + body


def alias_bomb(depth: int, width: int) -> str:
    """The billion laughs: each level a list of ``width`` aliases of the level below."""
    lines = ["variables:", f"  l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, depth + 1):
        lines.append(f"  l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return scenario_yaml("\n".join(lines) + "\n")


def nested_flow(depth: int, opening: str = "[", closing: str = "]") -> str:
    return scenario_yaml(f"variables:\n  deep: {opening * depth}{closing * depth}\n")


def nested_block(depth: int) -> str:
    """Block mappings nested ``depth`` levels, one indentation step each."""
    lines = ["variables:"] + [f"{'  ' * (level + 1)}k{level}:" for level in range(depth)]
    return scenario_yaml("\n".join(lines) + " 1\n")


#: The reasons of the refusals, as the messages say them.
ALIASES, TOO_DEEP = "are not accepted", f"nested deeper than {MAX_DEPTH} levels"


def yaml_bombs() -> Iterator[tuple[str, str, str, str]]:
    """(case, YAML text, the field the refusal names, its reason) for every variant of the class.

    libyaml stops reading flow collections nested beyond its own limit before the loader sees
    them: those refusals name the line and the whole document."""
    for depth in (2, 4, 6, 9, 12):
        for width in (2, 9, 30):
            yield f"alias bomb {depth}x{width}", alias_bomb(depth, width), "variables.l1[0]", ALIASES
    yield "alias as a key", scenario_yaml("variables:\n  base: &b x\n  ? *b\n  : 1\n"), "variables", ALIASES
    merge = scenario_yaml("variables:\n  base: &b {a: 1}\n  more:\n    <<: *b\n")
    yield "merge key through an alias", merge, "variables.more.<<", ALIASES
    for depth in (MAX_DEPTH + 1, 100, 500, 5_000, 50_000):
        yield f"flow sequences {depth} deep", nested_flow(depth), "variables.deep", TOO_DEEP
        yield f"flow mappings {depth} deep", nested_flow(depth, "{a: ", "}"), "variables.deep", TOO_DEEP
    for depth in (MAX_DEPTH + 1, 100, 300):
        yield f"block mappings {depth} deep", nested_block(depth), "variables.k0", TOO_DEEP


def seconds(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``call(*args, **kwargs)`` and the wall-clock seconds it took."""
    started = time.perf_counter()
    result = call(*args, **kwargs)
    return result, time.perf_counter() - started


def post_yaml(api: LiveAPI, text: str, role: str = "contributor", project: str = "ALPHA") -> requests.Response:
    return api.request("POST", f"/projects/{project}/scenarios", role, json={"yaml": text})


def refusal(response: requests.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    reply: dict[str, Any] = response.json()
    assert reply["status"] == status and reply["message"]
    return reply


# -- YAML ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_yaml_bombs_are_400s_naming_line_and_field_in_well_under_a_second(api: LiveAPI, ledger: Ledger) -> None:
    for case, text, field, reason in yaml_bombs():
        response, took = seconds(post_yaml, api, text)
        refused = response.status_code == 400 and took < BOUND
        assert ledger.tried(ATTACK, f"API yaml: {case}", refused), (case, response.status_code, took)
        reply = refusal(response)
        assert reason in reply["message"] and (reply["field"].startswith(field) or reply["field"] == "yaml"), reply
        assert reply["message"].startswith("yaml:") and reply["message"].split(":")[1].isdigit(), reply
    # Nothing was saved along the way.
    assert [s["id"] for s in api.request("GET", SCENARIOS).json()["items"]] == ["nightly"]


def test_every_reader_of_yaml_is_bounded_the_cli_included(tmp_path: Path, ledger: Ledger) -> None:
    """``himalia scenario validate`` and every ``load_document`` caller share the bounded loader."""
    for case, text, field, reason in yaml_bombs():
        started = time.perf_counter()
        with pytest.raises(DocumentError) as error:
            load_scenario(text, "bomb.yaml")
        took = time.perf_counter() - started
        assert ledger.tried(ATTACK, f"loader: {case}", took < BOUND), (case, took)
        assert reason in error.value.message and error.value.message.startswith("bomb.yaml:"), error.value.message
        assert error.value.field is None or error.value.field.startswith(field), (case, error.value.message)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(9, 9))
    result, took = seconds(CliRunner().invoke, main, ["scenario", "validate", str(bomb)])
    assert ledger.tried(ATTACK, "CLI validate: alias bomb 9x9", result.exit_code == 1 and took < BOUND)
    assert "aliases (*l0) are not accepted" in result.output and len(result.output.strip().splitlines()) == 1


def test_a_valid_scenario_still_loads_with_its_lines() -> None:
    """The bounds leave ordinary documents alone: anchors unused, tags, nesting to the limit."""
    deep = "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3)
    text = scenario_yaml(f"variables:\n  stamp: 2026-01-02\n  deep: {deep}\n  label: &name plain\n")
    definition = load_scenario(text)
    assert definition.variables["label"] == "plain" and str(definition.variables["stamp"]) == "2026-01-02"
    with pytest.raises(DocumentError) as error:
        load_scenario(text.replace("type: run_checks", "type: run_chekcs"), "f.yaml")
    assert error.value.message.startswith("f.yaml:4: steps[0]:")


def test_documents_larger_than_the_cap_are_refused_unread(api: LiveAPI, ledger: Ledger) -> None:
    filler = "# " + "x" * 78 + "\n"
    for size in (MAX_DOCUMENT_CHARS + 1, 4 * MAX_DOCUMENT_CHARS, 40 * MAX_DOCUMENT_CHARS):
        text = scenario_yaml() + filler * (size // len(filler) + 1)
        started = time.perf_counter()
        with pytest.raises(DocumentError, match="characters, more than the"):
            load_scenario(text, "huge.yaml")
        assert ledger.tried(ATTACK, f"document of {size} characters", time.perf_counter() - started < BOUND)
        response, took = seconds(post_yaml, api, text)
        assert ledger.tried(ATTACK, f"API document of {size} characters", response.status_code == 400 and took < BOUND)
        assert refusal(response)["field"] == "yaml"


# -- steps ---------------------------------------------------------------------------------------


def test_scenarios_have_at_most_max_steps(api: LiveAPI, ledger: Ledger) -> None:
    assert len(load_scenario(scenario_yaml(steps=MAX_STEPS)).steps) == MAX_STEPS
    for count in (MAX_STEPS + 1, 1_000, 2_500):
        response, took = seconds(post_yaml, api, scenario_yaml(steps=count))
        assert ledger.tried(ATTACK, f"{count} steps in YAML", response.status_code == 400 and took < BOUND), took
        reply = refusal(response)
        assert reply["field"] == "steps" and f"at most {MAX_STEPS} items" in reply["message"]
        steps = [{"name": f"s{i}", "type": "run_checks", "dataset": "transactions"} for i in range(count)]
        definition = {"id": "many", "name": "Many", "steps": steps}
        response, took = seconds(api.request, "POST", SCENARIOS, "contributor", json={"definition": definition})
        assert ledger.tried(ATTACK, f"{count} steps in JSON", response.status_code == 400 and took < BOUND), took
        assert refusal(response)["field"] == "definition.steps"


# -- JSON ------------------------------------------------------------------------------------------


def json_bombs() -> Iterator[tuple[str, str, str, bytes, str]]:
    """(case, method, path, body, the field named) for JSON nested deeper than MAX_BODY_DEPTH."""
    for depth in (MAX_BODY_DEPTH + 1, 500, 900, 5_000, 200_000):
        lists = "[" * depth + "]" * depth
        objects = '{"a":' * depth + "1" + "}" * depth
        yield f"body {depth} lists deep", "POST", "/tokens", lists.encode(), "0.0.0"
        yield f"body {depth} objects deep", "POST", "/tokens", objects.encode(), "a.a.a"
        scenario = '{"definition": {"id": "deep", "name": "Deep", "variables": {"v": ' + lists + "}}}"
        yield f"scenario variable {depth} deep", "POST", SCENARIOS, scenario.encode(), "definition.variables.v.0"
        variables = '{"variables": {"v": ' + objects + "}}"
        yield f"project variable {depth} deep", "PUT", "/projects/ALPHA/variables", variables.encode(), "variables.v.a"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_json_nested_too_deep_is_400_naming_the_field(api: LiveAPI, ledger: Ledger) -> None:
    for case, method, path, body, field in json_bombs():
        response, took = seconds(api.request, method, path, "contributor", data=body)
        assert ledger.tried(ATTACK, case, response.status_code == 400 and took < BOUND), (case, response.text, took)
        reply = refusal(response)
        # json.loads itself gives up past Python's recursion limit: then the whole body is named.
        assert reply["field"] == "body" or reply["field"].startswith(field), (case, reply)
        assert "nested deeper" in reply["message"], reply


def test_json_bodies_are_capped_in_bytes_and_values(api: LiveAPI, ledger: Ledger) -> None:
    api.plane.max_request_body_bytes = 1_000_000
    for size in (1_000_001, 5_000_000):
        body = json.dumps({"name": "x" * size}).encode()
        response, took = seconds(api.request, "POST", "/tokens", "reader", data=body)
        assert ledger.tried(ATTACK, f"JSON body of {len(body)} bytes", response.status_code == 400 and took < BOUND)
        assert refusal(response)["field"] == "body" and "more than the 1000000 accepted" in response.json()["message"]
    api.plane.max_request_body_bytes = 64 * 1024 * 1024
    for count in (MAX_BODY_VALUES + 1, 3 * MAX_BODY_VALUES):
        body = ("[" + "0," * count + "0]").encode()
        response, took = seconds(api.request, "POST", "/tokens", "reader", data=body)
        # Parsing the list is C; counting its values stops at the cap.
        assert ledger.tried(ATTACK, f"JSON body of {count} values", response.status_code == 400 and took < 3 * BOUND)
        assert refusal(response)["field"] == "body" and "more than" in response.json()["message"]


# -- who gets parsed at all -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_callers_who_may_not_write_are_refused_before_any_parsing(api: LiveAPI, ledger: Ledger) -> None:
    """The same bomb is a 400 once parsed: a 401, 403 or 404 proves it never was."""
    bomb = alias_bomb(12, 30)
    assert refusal(post_yaml(api, bomb), 400)  # a writer's request is parsed, and refused
    for role, project, status in [
        ("anonymous", "ALPHA", 401),
        ("anonymous", "NOPE", 401),
        ("reader", "NOPE", 404),
        ("nogrant", "ALPHA", 404),
        ("reader", "ALPHA", 403),
        ("contributor", "NOPE", 404),
    ]:
        response, took = seconds(post_yaml, api, bomb, role, project)
        refused = response.status_code == status and took < BOUND
        assert ledger.tried(ATTACK, f"{role} posting a bomb to {project}", refused), (role, project, response.text)
        put = api.request("PUT", f"/projects/{project}/scenarios/bomb", role, json={"yaml": bomb})
        assert ledger.tried(ATTACK, f"{role} putting a bomb to {project}", put.status_code == status), put.text
