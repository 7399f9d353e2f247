"""The OpenAPI document, generated from the handlers' ``@operation`` declarations."""

import re
from functools import cache
from importlib.metadata import version
from typing import Any

from pydantic import TypeAdapter

from himalia.api.base import API_PREFIX_SETTING, APIHandler, ErrorReply, Operation, operation
from himalia.api.resources import RESOURCE_HANDLERS

ERROR_STATUSES = {
    "400": "Invalid input; `field` names the offending field.",
    "401": "Not authenticated.",
    "403": "Authenticated but not allowed.",
    "404": "Absent, or hidden from the caller.",
    "409": "Conflicts with an existing object or a run in progress.",
    "429": "A limit on queued or concurrent work is reached; try later.",
    "503": "The database is unavailable; try again after `Retry-After` seconds.",
    "507": "The disk is full: nothing can be saved until space is freed.",
}
METHODS = ("get", "post", "put", "patch", "delete")
_REF = "#/components/schemas/{model}"


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, annotation: Any, mode: str) -> dict[str, Any]:
        schema = TypeAdapter(annotation).json_schema(ref_template=_REF, mode=mode)  # type: ignore[arg-type]
        self.components.update(schema.pop("$defs", {}))
        title = schema.get("title")
        if schema.get("type") == "object" and title and isinstance(annotation, type):
            self.components[title] = schema
            return {"$ref": _REF.format(model=title)}
        return schema


def _operation_doc(handler: type[APIHandler], method: str, op: Operation, schemas: _Schemas) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _path_parameters(handler.route)
    ]
    if op.query is not None:
        query_schema = TypeAdapter(op.query).json_schema(ref_template=_REF)
        schemas.components.update(query_schema.pop("$defs", {}))
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            parameters.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    doc: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{method}_{handler.__name__.removesuffix('Handler')}",
        "parameters": parameters,
        "responses": {},
    }
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.of(op.body, "validation")}},
        }
    if op.media_types != ("application/json",):
        # A YAML document describes an object; every other non-JSON answer is text or bytes.
        content = {
            media_type: {"schema": {"type": "object" if media_type.endswith("yaml") else "string"}}
            for media_type in op.media_types
        }
        doc["responses"]["200"] = {"description": "OK", "content": content}
    elif op.response is None:
        doc["responses"]["204"] = {"description": "Done."}
    else:
        doc["responses"][str(op.status)] = {
            "description": "OK",
            "content": {"application/json": {"schema": schemas.of(op.response, "serialization")}},
        }
    error = {"content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorReply")}}}}
    for status, description in ERROR_STATUSES.items():
        if op.anonymous and status in {"401", "403"}:
            continue
        doc["responses"][status] = {"description": description, **error}
    if op.anonymous:
        doc["security"] = []
    return doc


def _path_parameters(route: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", route)


def build_document(handlers: list[type[APIHandler]], prefix: str) -> dict[str, Any]:
    schemas = _Schemas()
    schemas.of(ErrorReply, "serialization")
    paths: dict[str, Any] = {}
    for handler in handlers:
        item: dict[str, Any] = {}
        for method in METHODS:
            op = getattr(getattr(handler, method, None), "__himalia_operation__", None)
            if op is not None:
                item[method] = _operation_doc(handler, method, op, schemas)
        paths[prefix + handler.route] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Himalia control plane",
            # the distribution's: the package root's __version__ would tie the API to every host the root names
            "version": version("himalia"),
            "description": "Projects, permissions, connections, variables, tokens and the audit trail.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`token <API token>`",
                }
            },
        },
        "security": [{"token": []}],
    }


@cache
def document_for(prefix: str) -> dict[str, Any]:
    return build_document([*RESOURCE_HANDLERS, OpenAPIHandler], prefix)


class OpenAPIHandler(APIHandler):
    route = "/openapi.json"

    @operation("This document.", response=dict[str, Any], anonymous=True)
    async def get(self) -> dict[str, Any]:
        return document_for(self.settings[API_PREFIX_SETTING])
