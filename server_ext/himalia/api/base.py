"""The one base of every REST handler: authentication, body and query parsing, one error path.

Handlers are adapters: an ``@operation`` declares the method's summary, query, body and
response models (the OpenAPI document is generated from these declarations), the wrapper
parses and validates the request into those models, the method calls one service verb in the
worker pool (the store is synchronous and must not block the IOLoop), and the wrapper
serializes what it returns. Every ``HimaliaError`` maps to its status in ``write_error``.
"""

import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from tornado import web

from ..caller import Caller
from ..controlplane import ControlPlane
from ..errors import HimaliaError, InvalidInput, Unauthenticated

R = TypeVar("R")

CONTROL_PLANE = "himalia_control_plane"
API_PREFIX_SETTING = "himalia_api_prefix"

log = logging.getLogger("himalia.api")


class Query(BaseModel):
    """Base of query-string models: unknown parameters are ignored, as browsers add their own."""

    model_config = ConfigDict(extra="ignore")


class PageQuery(Query):
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)


class ErrorReply(BaseModel):
    status: int
    message: str
    field: str | None = None


@dataclass(frozen=True)
class Operation:
    summary: str
    response: Any = None
    body: type[BaseModel] | None = None
    query: type[Query] | None = None
    status: int = 200
    anonymous: bool = False
    #: Anything but JSON means the method writes its own response, in one of these types.
    media_types: tuple[str, ...] = ("application/json",)


def _field_of(error: ValidationError) -> tuple[str, str]:
    """The dotted location and message of a validation error's first problem."""
    first = error.errors()[0]
    return ".".join(str(part) for part in first["loc"]), first["msg"]


_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _check_storable(value: Any, field: str) -> None:
    """Refuse NUL characters (PostgreSQL text cannot hold them) and unpaired surrogates (not UTF-8)."""
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise InvalidInput(f"{field}: NUL characters and unpaired surrogates are not accepted.", field=field)
        return
    items: list[tuple[Any, Any]] = list(value.items()) if isinstance(value, dict) else []
    items += list(enumerate(value)) if isinstance(value, list) else []
    for key, item in items:
        _check_storable(key, field)
        _check_storable(item, str(key) if field == "body" else f"{field}.{key}")


def operation(summary: str, **declaration: Any) -> Callable[..., Any]:
    """Declare and implement one HTTP method of a handler (see the module docstring)."""
    op = Operation(summary, **declaration)

    def decorate(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[None]]:
        @wraps(method)
        async def handle(self: "APIHandler", **path: str) -> None:
            for name, value in path.items():
                _check_storable(value, name)
            arguments: dict[str, Any] = {}
            if op.query is not None:
                raw = {name: self.get_query_argument(name) for name in self.request.query_arguments}
                try:
                    arguments["query"] = op.query.model_validate(raw)
                except ValidationError as error:
                    field, message = _field_of(error)
                    raise InvalidInput(f"Query parameter '{field}': {message}", field=field) from None
            if op.body is not None:
                arguments["spec"] = self.parse_body(op.body)
            result = await method(self, **path, **arguments)
            if op.media_types != ("application/json",):
                return  # the method wrote its own response
            if result is None:
                self.set_status(204)
                self.finish()
                return
            self.set_status(op.status)
            self.set_header("Content-Type", "application/json")
            adapter: TypeAdapter[Any] = TypeAdapter(op.response)
            self.finish(adapter.dump_json(result))

        handle.__himalia_operation__ = op  # type: ignore[attr-defined]
        return handle

    return decorate


class APIHandler(web.RequestHandler):
    """Base of Himalia's REST handlers in both hosts."""

    #: The path below the API prefix, with ``{name}`` path parameters.
    route: ClassVar[str]

    caller: Caller

    @property
    def control_plane(self) -> ControlPlane:
        return self.settings[CONTROL_PLANE]

    async def call(self, verb: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run a service verb in the worker pool."""
        return await self.control_plane.call(verb, *args, **kwargs)

    async def prepare(self) -> None:
        parent = super().prepare()
        if inspect.isawaitable(parent):
            await parent
        if self._finished:
            return
        method = getattr(self, self.request.method.lower(), None)
        op: Operation | None = getattr(method, "__himalia_operation__", None)
        if op is not None and op.anonymous:
            return
        self.caller = await self.authenticate()

    def bearer_token(self) -> str | None:
        header = self.request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() in {"token", "bearer"} and value.strip():
            return value.strip()
        return None

    @property
    def client_address(self) -> str:
        return self.request.remote_ip or ""

    async def authenticate(self) -> Caller:
        """The caller of this request: a Himalia token, else the host's own user, else 401."""
        token = self.bearer_token()
        if token is not None and token.startswith("hml_"):
            try:
                return await self.call(self.control_plane.tokens.authenticate, token, self.client_address)
            except Unauthenticated:
                self.log_denied("invalid or expired token")
                raise
        host_caller = await self.host_caller()
        if host_caller is not None:
            return host_caller
        raise Unauthenticated("Authenticate with 'Authorization: token <API token>'.")

    async def host_caller(self) -> Caller | None:
        """The caller the hosting server vouches for; none in the stand-alone service."""
        return None

    def log_denied(self, reason: str) -> None:
        log.warning("Denied %s %s from %s: %s", self.request.method, self.request.path, self.client_address, reason)

    def parse_body(self, model: type[BaseModel]) -> Any:
        try:
            payload = json.loads(self.request.body or b"null")
        except ValueError:
            raise InvalidInput("The request body is not valid JSON.", field="body") from None
        _check_storable(payload, "body")
        try:
            return model.model_validate(payload)
        except ValidationError as error:
            field, message = _field_of(error)
            raise InvalidInput(f"{field}: {message}" if field else message, field=field or "body") from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, HimaliaError):
            status_code, reply = (
                error.status,
                ErrorReply(status=error.status, message=error.message, field=error.field),
            )
        elif isinstance(error, web.HTTPError):
            status_code = error.status_code
            reply = ErrorReply(status=status_code, message=error.log_message or self._reason)
        else:
            reply = ErrorReply(status=status_code, message=self._reason if status_code < 500 else "Internal error.")
        self.set_status(status_code)
        self.clear_header("Content-Type")
        self.set_header("Content-Type", "application/json")
        self.finish(reply.model_dump_json())

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, HimaliaError) and value.status < 500:
            return  # an expected answer, not a failure of the server
        super().log_exception(typ, value, tb)


_PARAMETER = re.compile(r"\{(\w+)\}")


def route_pattern(prefix: str, route: str) -> str:
    """Tornado's regular expression for a ``{name}`` route."""
    return prefix + _PARAMETER.sub(r"(?P<\1>[^/]+)", route) + "/?"
