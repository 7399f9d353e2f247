"""Property-based fuzzing of every operation of the served OpenAPI document (schemathesis).

The one property: whatever a client sends, the API never answers 5xx.
"""

import copy
import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import LiveAPI, World

MAX_EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(params=["admin", "nogrant"])
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def seeded_names(world: World) -> dict[str, list[str]]:
    return {
        "key": ["ALPHA"],
        "name": ["readers", "contributors", "creators", "shared_db", "personal_db"],
        "login": ["reader", "contributor", "nogrant", "target"],
        "principal_type": ["group", "user"],
        "token_id": [str(world.target_token_id)],
    }


def enrich(document: dict[str, Any], world: World) -> dict[str, Any]:
    document = copy.deepcopy(document)
    known = seeded_names(world)
    for item in document["paths"].values():
        for op in item.values():
            for parameter in op.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in known:
                    parameter["schema"] = {"anyOf": [{"enum": known[parameter["name"]]}, parameter["schema"]]}
    return document


def fuzz_operation(operation: Any, mode: GenerationMode, api: LiveAPI, role: str) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=api.base.removesuffix("/himalia/api/v1"),
            session=api.http,
            headers={"Authorization": f"token {api.world.tokens[role]}"},
            checks=CHECKS,
            timeout=30,
        )

    run()


@pytest.mark.fuzz
def test_no_server_error(api: LiveAPI, role: str) -> None:
    document = api.http.get(f"{api.base}/openapi.json", timeout=10).json()
    config = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
    schema = schemathesis.openapi.from_dict(enrich(document, api.world), config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    failures = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            start = time.perf_counter()
            try:
                fuzz_operation(operation, mode, api, role)
            except Exception as error:
                failures.append(f"{operation.label} [{mode}]: {error}")
            print(operation.label, mode, round(time.perf_counter() - start, 2))
    assert not failures, "\n\n".join(failures)
