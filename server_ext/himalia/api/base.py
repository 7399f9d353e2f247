"""The one base of every REST handler: authentication, body and query parsing, one error path.

Handlers are adapters: an ``@operation`` declares the method's summary, query, body and
response models (the OpenAPI document is generated from these declarations), the wrapper
parses and validates the request into those models, the method calls one service verb in the
worker pool (the store is synchronous and must not block the IOLoop), and the wrapper
serializes what it returns. Every ``HimaliaError`` maps to its status in ``write_error``, and so
do the store's failures that are no bug: a database that cannot be reached is a 503 with
``Retry-After``, a full disk a 507, each with a sentence instead of a traceback.

Input is bounded before any work: a body is parsed only after the caller is authenticated, and
only up to ``ControlPlane.max_request_body_bytes``, ``MAX_BODY_DEPTH`` levels of nesting and
``MAX_BODY_VALUES`` values. The caller's address is the peer's, unless the peer is one of the
configured trusted proxies (``TRUSTED_PROXIES_SETTING``): only then is ``X-Forwarded-For`` read.
An application marked ``OPERATOR_SOCKET_SETTING`` serves the home's Unix socket (see
``himalia.core.operator_socket``): its callers are known by their OS account, not by a token.
"""

import errno
import inspect
import ipaddress
import json
import logging
import os
import pwd
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import exc as sa_exc
from tornado import web

from himalia.controlplane import ControlPlane
from himalia.core.errors import HimaliaError, InvalidInput, StorageFull, StoreUnavailable, Unauthenticated
from himalia.core.operator_socket import ACT_AS_HEADER, STORE_HEADER, peer_uid, store_digest
from himalia.identity.caller import Caller

R = TypeVar("R")

CONTROL_PLANE = "himalia_control_plane"
API_PREFIX_SETTING = "himalia_api_prefix"
#: The networks of the proxies whose forwarded-for headers are believed (``trusted_networks``).
TRUSTED_PROXIES_SETTING = "himalia_trusted_proxies"
#: Set on the application that serves the home's operator socket (``hosts.operator_socket``).
OPERATOR_SOCKET_SETTING = "himalia_operator_socket"
#: Where the hub's proxy runs unless configured otherwise: on the hub's machine.
LOOPBACK = ("127.0.0.1", "::1")

#: The deepest nesting of a JSON body: scenarios and notebooks need fewer than twenty levels.
MAX_BODY_DEPTH = 64
#: The most values (strings, numbers, list items, object members) in one JSON body.
MAX_BODY_VALUES = 1_000_000
#: Seconds a client is asked to wait before retrying while the database is unavailable.
RETRY_AFTER_SECONDS = 10

log = logging.getLogger("himalia.api")


class Query(BaseModel):
    """Base of query-string models: unknown parameters are ignored, as browsers add their own."""

    model_config = ConfigDict(extra="ignore")


class PageQuery(Query):
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=10_000_000)


class OtherStore(HimaliaError):
    """The operator socket of a control plane whose store is not the one the client means."""

    status = 421  # Misdirected Request


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


def _check_body(payload: Any) -> None:
    """Refuse a parsed body nested deeper than ``MAX_BODY_DEPTH``, holding more than
    ``MAX_BODY_VALUES`` values, or with strings the store cannot hold; one walk, no recursion."""
    pending: list[tuple[Any, str, int]] = [(payload, "body", 1)]
    values = 1
    while pending:
        value, field, depth = pending.pop()
        if isinstance(value, str):
            _check_storable(value, field)
            continue
        items: Iterable[tuple[Any, Any]]
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if depth > MAX_BODY_DEPTH:
            raise InvalidInput(f"{field}: nested deeper than {MAX_BODY_DEPTH} levels.", field=field)
        values += len(value)
        if values > MAX_BODY_VALUES:
            raise InvalidInput(f"The request body holds more than {MAX_BODY_VALUES} values.", field="body")
        for key, item in items:
            _check_storable(key, field)
            pending.append((item, str(key) if field == "body" else f"{field}.{key}", depth + 1))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(addresses: Iterable[str]) -> tuple[Network, ...]:
    """The networks of configured proxy addresses (``10.0.0.7``, ``10.0.0.0/8``, ``::1``)."""
    return tuple(ipaddress.ip_network(address.strip(), strict=False) for address in addresses)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, proxies: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in proxies)


def store_failure(error: BaseException) -> HimaliaError | None:
    """What a failure of the store or the disk means to a client, or ``None`` for a bug.

    A full disk (SQLite's ``SQLITE_FULL``, PostgreSQL's ``disk_full`` class 53100, ``ENOSPC``) is
    507; a database that cannot be reached or answer (a lost or refused connection, a locked
    file, an exhausted pool) is 503, worth retrying.
    """
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull("The disk is full: nothing can be saved until space is freed.")
    if isinstance(error, sa_exc.DBAPIError):
        original = error.orig
        state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
        if state == "53100" or "database or disk is full" in str(original):
            return StorageFull("The database's disk is full: nothing can be saved until space is freed.")
        if isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError) or error.connection_invalidated:
            return StoreUnavailable("The database is unavailable right now; try again shortly.")
    if isinstance(error, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return StoreUnavailable("The database is unavailable right now; try again shortly.")
    return None


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
            if op.media_types != ("application/json",) or self._finished:
                return  # the method wrote its own response (or answered 304 Not Modified)
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
        """The peer's address; from a trusted proxy, the address it says it forwards for: the
        nearest one in ``X-Forwarded-For`` that is not itself a trusted proxy, or ``X-Real-IP``."""
        peer = self.request.remote_ip or ""
        proxies: tuple[Network, ...] = self.settings.get(TRUSTED_PROXIES_SETTING, ())
        if not _trusted(_address(peer), proxies):
            return peer
        chain = [part.strip() for part in self.request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if not chain and self.request.headers.get("X-Real-IP"):
            chain = [self.request.headers["X-Real-IP"].strip()]
        for hop in reversed(chain):
            address = _address(hop)
            if address is None:
                return peer  # not an address: the proxy's word stops here
            if not _trusted(address, proxies):
                return str(address)
        return str(_address(chain[0])) if chain else peer

    async def authenticate(self) -> Caller:
        """The caller of this request: a Himalia token, else the host's own user, else 401.

        An ``Authorization`` header is the whole claim: when it is not a valid token, the answer is
        401, never the identity a cookie of the same request would give (hosts check the rest).
        """
        if self.settings.get(OPERATOR_SOCKET_SETTING):
            return await self.operator_caller()
        token = self.bearer_token()
        if token is None and "Authorization" in self.request.headers:
            self.log_denied("malformed Authorization header")
            raise Unauthenticated("The Authorization header must be 'token <API token>' or 'Bearer <API token>'.")
        if token is not None and token.startswith("hml_"):
            tokens = self.control_plane.tokens
            if (reused := tokens.reused(token, self.client_address)) is not None:
                return reused  # on the event loop: no thread hop for a caller found a moment ago
            try:
                return await self.call(tokens.authenticate, token, self.client_address)
            except Unauthenticated:
                self.log_denied("invalid or expired token")
                raise
        host_caller = await self.host_caller()
        if host_caller is not None:
            return host_caller
        raise Unauthenticated("Authenticate with 'Authorization: token <API token>'.")

    async def operator_caller(self) -> Caller:
        """A request on the operator socket: the operator (``cli:<account>``, as the CLI in-process),
        or the user ``X-Himalia-As`` names with that user's rights, if the peer process runs as this
        control plane's own OS account; anyone else is refused, whatever the request carries."""
        connection: socket.socket | None = getattr(getattr(self.request.connection, "stream", None), "socket", None)
        if connection is None or connection.family != socket.AF_UNIX or peer_uid(connection) != os.geteuid():
            self.log_denied("not this control plane's OS account on its operator socket")
            raise Unauthenticated("Only the control plane's own OS account may use its operator socket.")
        meant = self.request.headers.get(STORE_HEADER)
        if meant is not None and meant != store_digest(self.control_plane.db_url):
            raise OtherStore("This control plane serves another store than the one the request names.")
        if login := self.request.headers.get(ACT_AS_HEADER, "").strip():
            return await self.call(self.control_plane.users.caller_for, login, client_address="cli")
        return Caller.operator(f"cli:{pwd.getpwuid(os.geteuid()).pw_name}")

    async def host_caller(self) -> Caller | None:
        """The caller the hosting server vouches for; none in the stand-alone service."""
        return None

    def log_denied(self, reason: str) -> None:
        log.warning("Denied %s %s from %s: %s", self.request.method, self.request.path, self.client_address, reason)

    def parse_body(self, model: type[BaseModel]) -> Any:
        body = self.request.body or b"null"
        limit = self.control_plane.max_request_body_bytes
        if len(body) > limit:
            raise InvalidInput(f"The request body has {len(body)} bytes, more than the {limit} accepted.", field="body")
        try:
            payload = json.loads(body)
        except RecursionError:
            raise InvalidInput(f"body: nested deeper than {MAX_BODY_DEPTH} levels.", field="body") from None
        except ValueError:
            raise InvalidInput("The request body is not valid JSON.", field="body") from None
        _check_body(payload)
        try:
            return model.model_validate(payload, context=self.control_plane.validation_context())
        except ValidationError as error:
            field, message = _field_of(error)
            raise InvalidInput(f"{field}: {message}" if field else message, field=field or "body") from None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if error is not None:
            error = store_failure(error) or error
        if isinstance(error, StoreUnavailable):
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
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
        failure = store_failure(value)
        if failure is not None:  # an outage to report in one line, not a bug to trace
            # The driver's message only: SQLAlchemy's own adds the statement and its parameters.
            reason = getattr(value, "orig", None) or value
            log.error("%s %s: %s (%s)", self.request.method, self.request.path, failure.message, reason)
            return
        super().log_exception(typ, value, tb)


_PARAMETER = re.compile(r"\{(\w+)\}")


def route_pattern(prefix: str, route: str) -> str:
    """Tornado's regular expression for a ``{name}`` route."""
    return prefix + _PARAMETER.sub(r"(?P<\1>[^/]+)", route) + "/?"
