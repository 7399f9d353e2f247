"""Webhooks as an attacker who may edit a scenario would aim them: at the inside of the network.

Every target is delivered for real through ``deliver`` (and, at the end, through a run of the
engine). Nothing may leave this machine: a guard on ``socket.connect`` records every connection
and refuses any that is not loopback, and name resolution goes to a table (``dns``) that knows
only the names of these tests, so not even a DNS query leaves. Loopback spellings point at live
receivers, so that a target let through would show up there as well as in the guard.
"""

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from traitlets import TraitError

from himalia.controlplane import ControlPlane
from himalia.core.outbound import DestinationPolicy, DestinationRefused
from himalia.scenarios.reporting import Delivery, Mailer, RunSummary, WebhookSettings, deliver
from himalia.wire.definitions import WebhookReporter

from ..conftest import LiveAPI
from ..tls import self_signed
from .conftest import Ledger

ATTACK = "10 SSRF targets"
REAL_GETADDRINFO = socket.getaddrinfo
REAL_CONNECT = socket.socket.connect


# -- the wire and the resolver ---------------------------------------------------------------------


@dataclass
class Wire:
    """Every TCP connection attempted during a test, by address; only loopback ones went through."""

    connections: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)


@pytest.fixture(autouse=True)
def wire(monkeypatch: pytest.MonkeyPatch) -> Wire:
    seen = Wire()

    def guarded_connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0]).split("%", 1)[0]
            seen.connections.append(host)
            if not ipaddress.ip_address(host).is_loopback:
                seen.stopped.append(host)
                raise AssertionError(f"a connection to {host} would have left this machine")
        REAL_CONNECT(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return seen


@dataclass
class Dns:
    """Answers for the test's names (a list of addresses, or a function of the lookup count)."""

    answers: dict[str, Callable[[int], list[str]]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    def set(self, name: str, *addresses: str) -> None:
        self.answers[name] = lambda _count: list(addresses)


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> Dns:
    table = Dns()

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = str(host).lower().rstrip(".")
        try:
            ipaddress.ip_address(name)
        except ValueError:
            table.lookups.append(name)  # names only: connecting to an address "resolves" it too
        else:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        if name in table.answers:
            count = table.lookups.count(name)
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in table.answers[name](count)
            ]
        if name != "localhost":  # /etc/hosts only: no DNS query may leave
            raise socket.gaierror(socket.EAI_NONAME, f"{name} is not a name of these tests")
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


# -- receivers -------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """An HTTP receiver on a loopback address; records requests, answers ``status`` and ``body``."""

    host: str
    port: int = 0
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    status: int = 200
    reason: str | None = None
    body: bytes = b"ok"
    location: str | None = None

    def url(self, path: str = "/hook", host: str | None = None, scheme: str = "http") -> str:
        shown = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{shown}:{self.port}{path}"

    def reset(self) -> None:
        self.requests.clear()
        self.status, self.reason, self.body, self.location = 200, None, b"ok", None


def serve(receiver: Receiver, context: ssl.SSLContext | None = None) -> Callable[[], None]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append((self.path, dict(self.headers.items())))
            self.send_response(receiver.status, receiver.reason)
            if receiver.location:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", str(len(receiver.body)))
            self.end_headers()
            self.wfile.write(receiver.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in receiver.host else socket.AF_INET

    server = Server((receiver.host, receiver.port), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop


@pytest.fixture(scope="module")
def receivers() -> Iterator[dict[str, Receiver]]:
    """``allowed`` on 127.0.0.1 (the tests allow it), ``other`` on 127.0.0.2 and ``v6`` on ::1 (never allowed)."""
    found = {"allowed": Receiver("127.0.0.1"), "other": Receiver("127.0.0.2"), "v6": Receiver("::1")}
    stops = [serve(receiver) for receiver in found.values()]
    yield found
    for stop in stops:
        stop()


@pytest.fixture
def hooks(receivers: dict[str, Receiver]) -> dict[str, Receiver]:
    for receiver in receivers.values():
        receiver.reset()
    return receivers


def summary() -> RunSummary:
    return RunSummary(
        project="ALPHA",
        scenario_id="nightly",
        scenario_name="Nightly",
        run_id=7,
        outcome="failed",
        previous_outcome=None,
        trigger="manual by contributor",
        started_at=None,
        ended_at=None,
        steps=[],
        checks=[],
        variables={},
    )


def send(url: str, settings: WebhookSettings | None = None, slept: list[float] | None = None) -> Delivery:
    reporter = WebhookReporter(type="webhook", url=url)
    pause = slept.append if slept is not None else (lambda _: None)
    return deliver(reporter, summary(), Mailer(), "", sleep=pause, webhook_timeout=5, webhooks=settings)


ALLOW_LOOPBACK_ONE = WebhookSettings(allowed_destinations=["127.0.0.1"])

# -- every spelling of the inside ------------------------------------------------------------------

#: (target, receiver it would reach if let through, or None for addresses off this machine)
LITERAL_TARGETS: list[tuple[str, str | None]] = [
    # loopback, as C's inet_aton and the URL parsers read it
    *(
        (f"http://{host}:{{port}}/hook", "allowed")
        for host in (
            "127.0.0.1",
            "127.1",
            "127.0.1",
            "0177.0.0.1",
            "0177.1",
            "00000177.0.0.1",
            "0x7f.0.0.1",
            "0x7f.1",
            "0X7F000001",
            "0x7f000001",
            "2130706433",
            "017700000001",
            "127.000.000.001",
            "127.0.0.1.",
            "user:password@127.0.0.1",
            "example.org@127.0.0.1",
        )
    ),
    ("http://127.0.0.1:{port}#@example.org/", "allowed"),
    ("http://127.0.0.1:{port}?@example.org/", "allowed"),
    ("https://127.0.0.1:{port}/hook", "allowed"),
    ("http://127.0.0.2:{port}/hook", "other"),
    ("http://127.255.255.254:{port}/hook", None),
    # the unspecified address connects to this machine on Linux
    *((f"http://{host}:{{port}}/hook", "allowed") for host in ("0.0.0.0", "0", "0x0", "0.0")),
    # IPv6 loopback and IPv6 forms that carry an IPv4 loopback address
    *(
        (f"http://[{host}]:{{port}}/hook", "v6")
        for host in ("::1", "0:0:0:0:0:0:0:1", "0000:0000::0001", "::", "0:0:0:0:0:0:0:0")
    ),
    *(
        (f"http://[{host}]:{{port}}/hook", "allowed")
        for host in (
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "0:0:0:0:0:ffff:127.0.0.1",
            "::127.0.0.1",
            "2002:7f00:1::",
            "64:ff9b::7f00:1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
        )
    ),
    # private, shared, link-local and unique-local
    *(
        (f"http://{host}/hook", None)
        for host in (
            "10.0.0.1",
            "10.255.255.254",
            "012.0.0.1",
            "167772161",
            "0xa.0.0.1",
            "172.16.0.1",
            "172.31.255.254",
            "192.168.0.1",
            "192.168.1.1:8080",
            "0xc0.0xa8.1.1",
            "3232235777",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.0.1",
            "[::ffff:10.0.0.1]",
            "[::ffff:192.168.1.1]",
            "[fe80::1]",
            "[fe80::1%25lo]",
            "[fc00::1]",
            "[fd12:3456:789a::1]",
            "[fec0::1]",
        )
    ),
    # cloud metadata, in every spelling
    *(
        (f"http://{host}/latest/meta-data/iam/security-credentials/", None)
        for host in (
            "169.254.169.254",
            "2852039166",
            "0xa9fea9fe",
            "0251.0376.0251.0376",
            "0xa9.0xfe.0xa9.0xfe",
            "169.254.43518",
            "[::ffff:169.254.169.254]",
            "[::ffff:a9fe:a9fe]",
            "[64:ff9b::a9fe:a9fe]",
            "[fd00:ec2::254]",
            "169.254.170.2",
            "100.100.100.200",
            "168.63.129.16",
            "192.0.0.192",
        )
    ),
    # multicast, broadcast and reserved
    *(
        (f"http://{host}/hook", None)
        for host in (
            "224.0.0.1",
            "239.255.255.250",
            "[ff02::1]",
            "[ff05::1:3]",
            "255.255.255.255",
            "4294967295",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
        )
    ),
]

#: Names and what the attacker's DNS answers for them.
NAME_TARGETS: list[tuple[str, list[str]]] = [
    ("metadata.google.internal", ["169.254.169.254"]),
    ("instance-data.ec2.internal", ["169.254.169.254"]),
    ("imds-v6.attacker.example", ["fd00:ec2::254"]),
    ("intranet.attacker.example", ["10.1.2.3"]),
    ("mapped.attacker.example", ["::ffff:10.1.2.3"]),
    ("loopback-v6.attacker.example", ["::1"]),
    ("public-then-loopback.attacker.example", ["93.184.215.14", "127.0.0.1"]),
    ("loopback-then-public.attacker.example", ["127.0.0.1", "93.184.215.14"]),
    ("public-then-metadata.attacker.example", ["2606:2800:21f:cb07:6820:80da:af6b:8b2c", "fd00:ec2::254"]),
]


def assert_refused_before_leaving(delivery: Delivery, slept: list[float], wire: Wire) -> bool:
    """A refusal by the policy: one attempt, no retry, no connection at all."""
    refused = (
        not delivery.sent
        and delivery.attempts == 1
        and slept == []
        and delivery.error is not None
        and delivery.error.startswith("refused: ")
        and wire.connections == []
    )
    assert refused, (delivery, slept, wire)
    return refused


@pytest.mark.parametrize(("template", "receiver"), LITERAL_TARGETS)
def test_inside_addresses_in_every_spelling_are_refused_before_connecting(
    template: str, receiver: str | None, hooks: dict[str, Receiver], wire: Wire, ledger: Ledger
) -> None:
    port = hooks[receiver].port if receiver else 80
    url = template.format(port=port)
    slept: list[float] = []
    delivery = send(url, slept=slept)

    refused = assert_refused_before_leaving(delivery, slept, wire)
    assert all(not r.requests for r in hooks.values())
    assert ledger.tried(ATTACK, url, refused)


@pytest.mark.parametrize(("name", "addresses"), NAME_TARGETS)
def test_names_that_resolve_inside_are_refused_whatever_else_they_resolve_to(
    name: str, addresses: list[str], hooks: dict[str, Receiver], dns: Dns, wire: Wire, ledger: Ledger
) -> None:
    dns.set(name, *addresses)
    slept: list[float] = []
    delivery = send(f"http://{name}:{hooks['allowed'].port}/hook", slept=slept)

    refused = assert_refused_before_leaving(delivery, slept, wire)
    assert dns.lookups == [name]  # resolved once, refused on the inside address among its answers
    assert delivery.error is not None and "resolves to" in delivery.error
    assert ledger.tried(ATTACK, f"{name} -> {addresses}", refused)


@pytest.mark.parametrize("name", ["localhost", "LOCALHOST", "localhost."])
def test_localhost_is_refused_after_resolution(
    name: str, hooks: dict[str, Receiver], wire: Wire, ledger: Ledger
) -> None:
    slept: list[float] = []
    delivery = send(hooks["allowed"].url(host=name), slept=slept)

    refused = assert_refused_before_leaving(delivery, slept, wire)
    assert delivery.error is not None and delivery.error.startswith("refused: localhost resolves to 127.0.0.1")
    assert not hooks["allowed"].requests
    assert ledger.tried(ATTACK, name, refused)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "gopher://127.0.0.1:70/_stats", "ftp://10.0.0.1/", "dict://127.0.0.1:11211/stat"]
)
def test_other_schemes_are_refused(url: str, wire: Wire, ledger: Ledger) -> None:
    with pytest.raises(DestinationRefused, match="only http and https"):
        DestinationPolicy(["0.0.0.0/0"]).check(url)
    assert ledger.tried(ATTACK, url, refused=wire.connections == [])


# -- what an allow-list opens, and what it does not -------------------------------------------------


def test_an_allowed_network_opens_exactly_that_network(hooks: dict[str, Receiver], wire: Wire, ledger: Ledger) -> None:
    assert send(hooks["allowed"].url(), ALLOW_LOOPBACK_ONE).sent
    assert [path for path, _ in hooks["allowed"].requests] == ["/hook"]
    assert wire.connections == ["127.0.0.1"]
    assert send(hooks["allowed"].url(host="localhost"), ALLOW_LOOPBACK_ONE).sent  # it resolves to 127.0.0.1
    for url in (hooks["other"].url(), hooks["v6"].url()):
        wire.connections.clear()
        delivery = send(url, ALLOW_LOOPBACK_ONE)
        refused = not delivery.sent and delivery.error is not None and delivery.error.startswith("refused: ")
        assert refused and wire.connections == [], (url, delivery)
        assert ledger.tried(ATTACK, f"{url} with 127.0.0.1 allowed", refused)
    assert not hooks["other"].requests and not hooks["v6"].requests


def test_an_allowed_host_name_opens_its_addresses(hooks: dict[str, Receiver], dns: Dns, wire: Wire) -> None:
    dns.set("hooks.corp.example", "127.0.0.2")
    dns.set("a.hooks.corp.example", "127.0.0.2")
    by_name = WebhookSettings(allowed_destinations=["localhost", "*.hooks.corp.example"])

    assert send(hooks["allowed"].url(host="localhost"), by_name).sent
    assert hooks["allowed"].requests[0][1]["Host"] == f"localhost:{hooks['allowed'].port}"
    assert send(hooks["other"].url(host="a.hooks.corp.example"), by_name).sent
    # The wildcard names subdomains only, and a name opens neither its address written out nor other names.
    for url in (hooks["other"].url(host="hooks.corp.example"), hooks["allowed"].url()):
        delivery = send(url, by_name)
        assert not delivery.sent and delivery.error is not None and delivery.error.startswith("refused: "), url
    assert wire.connections == ["127.0.0.1", "127.0.0.2"]


def test_metadata_addresses_open_only_when_named_themselves(ledger: Ledger) -> None:
    """Checked without sending: a broad network never opens the metadata service, naming it does."""
    broad = DestinationPolicy(["0.0.0.0/0", "::/0", "169.254.0.0/16", "fd00::/8", "metadata.google.internal"])
    for url in ("http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://[::ffff:169.254.169.254]/"):
        with pytest.raises(DestinationRefused, match="cloud metadata"):
            broad.check(url)
        assert ledger.tried(ATTACK, f"{url} under a broad allow-list", refused=True)
    assert broad.check("http://169.254.1.1/").address == ipaddress.ip_address("169.254.1.1")
    named = DestinationPolicy(["169.254.169.254"])
    assert named.check("http://169.254.169.254/latest").url == "http://169.254.169.254/latest"


def test_allow_list_entries_are_validated() -> None:
    with pytest.raises(TraitError, match="'not a host!' is neither a network"):
        WebhookSettings(allowed_destinations=["not a host!"])
    settings = WebhookSettings(allowed_destinations=["10.0.0.0/8", "fd00::/8", "Hooks.Example.", "*.corp.example"])
    assert settings.policy().names == {"hooks.example", "*.corp.example"}


# -- redirects, rebinding, replies ----------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("target", ["other", "metadata", "localhost"])
def test_a_redirect_from_an_allowed_receiver_is_not_followed(
    code: int, target: str, hooks: dict[str, Receiver], wire: Wire, ledger: Ledger
) -> None:
    locations = {
        "other": hooks["other"].url("/stolen"),
        "metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "localhost": hooks["other"].url("/stolen", host="localhost"),
    }
    hooks["allowed"].status, hooks["allowed"].location = code, locations[target]
    slept: list[float] = []
    delivery = send(hooks["allowed"].url(), ALLOW_LOOPBACK_ONE, slept)

    expected = f"HTTP {code} {HTTPStatus(code).phrase} (redirects are not followed)"
    refused = (delivery.sent, delivery.attempts, delivery.error, slept) == (False, 1, expected, [])
    assert refused, delivery
    assert wire.connections == ["127.0.0.1"] and not hooks["other"].requests
    assert ledger.tried(ATTACK, f"{code} redirect to {locations[target]}", refused)


def test_the_connection_goes_to_the_address_that_was_checked(hooks: dict[str, Receiver], dns: Dns, wire: Wire) -> None:
    """DNS rebinding: the name answers an allowed address to the check and another one afterwards.
    The request reaches the first, under its name, and the name is looked up once per attempt."""
    dns.answers["rebind.attacker.example"] = lambda count: ["127.0.0.1"] if count == 1 else ["127.0.0.2"]
    url = hooks["allowed"].url(host="rebind.attacker.example")

    assert send(url, ALLOW_LOOPBACK_ONE).sent
    assert dns.lookups == ["rebind.attacker.example"]
    assert wire.connections == ["127.0.0.1"] and not hooks["other"].requests
    (_, headers), *_ = hooks["allowed"].requests
    assert headers["Host"] == f"rebind.attacker.example:{hooks['allowed'].port}"


def test_no_reply_body_nor_reason_phrase_is_kept(hooks: dict[str, Receiver]) -> None:
    """An internal page behind an allowed receiver is not copied into the delivery people read."""
    hooks["allowed"].status, hooks["allowed"].reason = 404, "aws-secret-in-reason"
    hooks["allowed"].body = b"<html>root:x:0:0:aws_secret_access_key=AKIA-LEAKED</html>"
    delivery = send(hooks["allowed"].url(), ALLOW_LOOPBACK_ONE)

    assert (delivery.sent, delivery.error) == (False, "HTTP 404 Not Found")
    hooks["allowed"].status = 500
    delivery = send(hooks["allowed"].url(), ALLOW_LOOPBACK_ONE)
    assert (delivery.sent, delivery.attempts, delivery.error) == (False, 3, "HTTP 500 Internal Server Error")


@pytest.fixture(scope="module")
def tls_receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, Path]]:
    """HTTPS on 127.0.0.1 with a certificate for the name ``hooks.corp.example`` only."""
    cert, context = self_signed(
        tmp_path_factory.mktemp("webhook-tls"), "hooks.corp.example", x509.DNSName("hooks.corp.example")
    )
    receiver = Receiver("127.0.0.1")
    stop = serve(receiver, context)
    yield receiver, cert
    stop()


def test_tls_is_checked_against_the_name_while_connecting_to_the_checked_address(
    tls_receiver: tuple[Receiver, Path], dns: Dns, wire: Wire
) -> None:
    receiver, ca = tls_receiver
    receiver.reset()
    dns.set("hooks.corp.example", "127.0.0.1")
    dns.set("evil.attacker.example", "127.0.0.1")
    settings = WebhookSettings(allowed_destinations=["127.0.0.1"], ca_file=str(ca))

    assert send(receiver.url(host="hooks.corp.example", scheme="https"), settings).sent
    assert receiver.requests[0][1]["Host"] == f"hooks.corp.example:{receiver.port}"
    wrong_name = send(receiver.url(host="evil.attacker.example", scheme="https"), settings)
    assert not wrong_name.sent and wrong_name.error is not None and "certificate" in wrong_name.error.lower()
    assert len(receiver.requests) == 1 and set(wire.connections) == {"127.0.0.1"}


# -- through a run, as readers see it ---------------------------------------------------------------


def test_a_run_reports_the_refusal_and_only_statuses(
    plane: ControlPlane, api: LiveAPI, hooks: dict[str, Receiver], tmp_path: Path, ledger: Ledger
) -> None:
    """On SQLite and PostgreSQL: the engine's reporters use ``c.WebhookSettings``; what a reader of
    the run sees holds the refusal, then the status only."""
    plane.api_url = api.base
    plane.notebook_root = str(tmp_path)
    plane.config.LocalExecutor.warm_workers = 0
    plane.start_engine(schedule=False)
    hooks["allowed"].status, hooks["allowed"].body = 404, b"internal-page-marker"
    definition = {
        "id": "hooked",
        "name": "Hooked",
        "steps": [{"name": "Values", "type": "set_variables", "values": {"x": 1}}],
        "reporters": [{"type": "webhook", "url": hooks["allowed"].url("/hook?token=abc"), "format": "json"}],
    }
    reply = api.request("PUT", "/projects/ALPHA/scenarios/hooked", "admin", json={"definition": definition})
    assert reply.status_code == 200, reply.text

    def run_once() -> dict[str, Any]:
        started = api.request("POST", "/projects/ALPHA/scenarios/hooked/run", "admin", json={})
        assert started.status_code == 201, started.text
        path = f"/projects/ALPHA/scenarios/hooked/runs/{started.json()['id']}"
        deadline = time.monotonic() + 30
        while True:
            run: dict[str, Any] = api.request("GET", path, "reader").json()
            if run["state"] not in ("queued", "running") and run["deliveries"]:
                return run
            assert time.monotonic() < deadline, run
            time.sleep(0.1)

    refused_run = run_once()
    (delivery,) = refused_run["deliveries"]
    refused = delivery["sent"] is False and delivery["error"].startswith("refused: 127.0.0.1 is a loopback address")
    assert refused, delivery
    assert not hooks["allowed"].requests
    assert ledger.tried(ATTACK, "a run's webhook to 127.0.0.1", refused)

    plane.webhooks.allowed_destinations = ["127.0.0.1"]
    allowed_run = run_once()
    assert allowed_run["deliveries"][0]["error"] == "HTTP 404 Not Found"
    assert "internal-page-marker" not in str(allowed_run)
    assert len(hooks["allowed"].requests) == 1
