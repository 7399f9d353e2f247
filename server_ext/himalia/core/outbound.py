"""Outbound HTTP to addresses that users name (webhooks): resolve once, refuse the inside, connect there.

A webhook URL is written by whoever may edit a scenario, and the control plane posts to it from
inside the operator's network. Unchecked, that lets a scenario author reach what only the
platform should: the loopback interface, the private network, the cloud's metadata service
(169.254.169.254, fd00:ec2::254, …, which hands out the machine's credentials). So before any
packet leaves, the host is turned into addresses exactly once (numeric spellings such as
``2130706433``, ``0x7f.1`` or ``0177.0.0.1`` read as the C library reads them, IPv6 literals
with IPv4 inside read as that IPv4 address), every address is checked, and the connection goes
to the address that was checked, with the original ``Host`` header and TLS name, so that a DNS
answer that changes between the check and the connection (DNS rebinding) cannot redirect it.
Redirects are never followed.

Operators who do post to a receiver inside their network name it in an allow-list of networks
and host names (``c.WebhookSettings.allowed_destinations``). Cloud metadata addresses stay
refused under a broad allowed network: only naming the address itself opens one.
"""

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Addresses of cloud instance metadata and host services, which hand out credentials.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure IMDS, OpenStack, DigitalOcean, …
        "169.254.169.253",  # AWS DNS resolver
        "169.254.169.123",  # AWS time sync
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server (a public address, reachable only from Azure VMs)
        "192.0.0.192",  # Oracle Cloud
    )
)

#: Special-purpose ranges (IANA registries) no webhook may reach unless allowed, by what they are.
_FORBIDDEN: list[tuple[str, IPNetwork]] = [
    (kind, ipaddress.ip_network(network))
    for kind, networks in (
        ("an unspecified", ["0.0.0.0/8", "::/128"]),
        ("a loopback", ["127.0.0.0/8", "::1/128"]),
        ("a private", ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]),
        ("a shared (carrier-grade NAT)", ["100.64.0.0/10"]),
        ("a link-local", ["169.254.0.0/16", "fe80::/10"]),
        ("a unique-local", ["fc00::/7", "fec0::/10"]),
        ("a multicast", ["224.0.0.0/4", "ff00::/8"]),
        ("a broadcast", ["255.255.255.255/32"]),
        (
            "a reserved",
            [
                "192.0.0.0/24",
                "192.0.2.0/24",
                "192.88.99.0/24",
                "198.18.0.0/15",
                "198.51.100.0/24",
                "203.0.113.0/24",
                "240.0.0.0/4",
                "::/96",  # IPv4-compatible (deprecated)
                "64:ff9b:1::/48",
                "100::/64",
                "2001::/23",
                "2001:db8::/32",
                "3fff::/20",
                "5f00::/16",
            ],
        ),
    )
    for network in networks
]
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$", re.IGNORECASE)
_HOST_NAME = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


class DestinationRefused(Exception):
    """The URL points where outbound requests may not go; the message says why, without the path."""


class DestinationUnresolved(Exception):
    """The host name has no address now (worth retrying)."""


def _inet_number(part: str) -> int:
    """One part of a numeric host as C reads it: 0x… hexadecimal, 0… octal, else decimal."""
    if part.lower().startswith("0x"):
        return int(part[2:], 16)  # "0x" alone is no number (ValueError), as for inet_aton
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)
    return int(part)


def legacy_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Read ``host`` as ``inet_aton`` does (``127.1``, ``0x7f.1``, ``0177.0.0.1``, ``2130706433``),
    the way resolvers and browsers take such names; ``None`` if it is not such a number."""
    candidate = host[:-1] if host.endswith(".") else host
    if not _NUMERIC_HOST.match(candidate):
        return None
    try:
        parts = [_inet_number(part) for part in candidate.split(".")]
    except ValueError:  # '08' is not octal: not a number, so a name (that will not resolve)
        return None
    *leading, last = parts
    if any(part > 255 for part in leading) or last >= 256 ** (4 - len(leading)):
        return None
    value = 0
    for part in leading:
        value = value << 8 | part
    return ipaddress.IPv4Address(value << 8 * (4 - len(leading)) | last)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries to an IPv4 host: mapped, 6to4, NAT64 or Teredo."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_kind(address: IPAddress) -> str | None:
    """Why ``address`` is no place for a webhook ("a loopback", "cloud metadata", …), or None if public."""
    inner = embedded_ipv4(address)
    if isinstance(address, ipaddress.IPv6Address) and inner is not None:
        inner_kind = forbidden_kind(inner)
        if inner_kind is not None or address.ipv4_mapped is not None:  # a mapped address *is* its IPv4 one
            return inner_kind
    if address in METADATA_ADDRESSES:
        return "a cloud metadata"
    for kind, network in _FORBIDDEN:
        if address.version == network.version and address in network:
            return kind
    if not address.is_global or address.is_multicast:
        return "a reserved"
    return None


@dataclass(frozen=True)
class Destination:
    """Where one request goes: the checked address, and the name the receiver expects."""

    url: str  # the URL with the checked address in place of the host
    address: IPAddress
    server_name: str  # for the TLS certificate check and SNI
    host_header: str


def _parse_allowed(entries: Iterable[str]) -> tuple[list[IPNetwork], set[IPAddress], set[str]]:
    networks: list[IPNetwork] = []
    exact: set[IPAddress] = set()
    names: set[str] = set()
    for entry in entries:
        text = entry.strip().lower().rstrip(".")
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            if not _HOST_NAME.match(text):
                raise ValueError(f"'{entry}' is neither a network (10.0.0.0/8, ::1) nor a host name") from None
            names.add(text)
            continue
        networks.append(network)
        if network.num_addresses == 1:
            exact.add(network.network_address)
    return networks, exact, names


def _describe(host: str, address: IPAddress, kind: str) -> str:
    """How a refusal names the address: as written, with what it stands for when that differs."""
    inner = embedded_ipv4(address)
    if not (_NUMERIC_HOST.match(host) or ":" in host):
        carrying = f", carrying {inner}" if inner is not None else ""
        return f"{host} resolves to {address}{carrying}, {kind} address"
    if inner is not None:
        return f"{host} carries {inner}, {kind} address"
    if str(address) != host:
        return f"{host} is {address}, {kind} address"
    return f"{host} is {kind} address"


class DestinationPolicy:
    """Which addresses outbound requests may reach: public ones, and those the allow-list names.

    ``allowed`` holds networks (``127.0.0.1``, ``10.20.0.0/16``, ``fd12::/64``) and host names
    (``hooks.internal.example``, or ``*.internal.example`` for its subdomains); a named host may
    resolve to internal addresses.
    """

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.networks, self.exact, self.names = _parse_allowed(allowed)

    def name_allowed(self, host: str) -> bool:
        return host in self.names or any(
            name.startswith("*.") and host.endswith(name[1:]) and host != name[2:] for name in self.names
        )

    def refusal(self, address: IPAddress, host_named: bool = False) -> str | None:
        """What kind of address refused this is ("a loopback", …), or None if it may be reached."""
        candidates = [address] + ([inner] if (inner := embedded_ipv4(address)) is not None else [])
        kind = forbidden_kind(address)
        if kind is None:
            return None
        if kind == "a cloud metadata":  # opened only by naming the address itself
            if any(candidate in self.exact for candidate in candidates):
                return None
        elif host_named or any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.networks
        ):
            return None
        return kind

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses of ``host``: read from the literal, else resolved once."""
        literal = legacy_ipv4(host)
        if literal is not None:
            return [literal]
        try:
            return [ipaddress.ip_address(host.split("%", 1)[0])]
        except ValueError:
            pass
        try:
            answers = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            raise DestinationUnresolved(f"could not resolve {host}: {error}") from None
        found: list[IPAddress] = []
        for family, *_, sockaddr in answers:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in found:
                found.append(address)
        if not found:
            raise DestinationUnresolved(f"{host} has no IPv4 or IPv6 address")
        return found

    def check(self, url: str) -> Destination:
        """Where a request to ``url`` may go; raises ``DestinationRefused`` (or ``DestinationUnresolved``)."""
        try:
            parts = urlsplit(url)
            host, port = (parts.hostname or "").rstrip("."), parts.port
        except ValueError:
            raise DestinationRefused("not a valid URL") from None
        if parts.scheme not in ("http", "https"):
            raise DestinationRefused("only http and https URLs are allowed")
        if not host:
            raise DestinationRefused("the URL names no host")
        port = port or (443 if parts.scheme == "https" else 80)
        addresses = self.addresses(host, port)
        named = self.name_allowed(host)
        for address in addresses:  # every answer: one bad address and a retry could land on it
            kind = self.refusal(address, named)
            if kind is not None:
                raise DestinationRefused(
                    f"refused: {_describe(host, address, kind)}; webhooks go only to public "
                    "addresses unless c.WebhookSettings.allowed_destinations names it"
                )
        address = addresses[0]
        literal = f"[{address}]" if address.version == 6 else str(address)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = (f"{userinfo}@" if userinfo else "") + literal + (f":{parts.port}" if parts.port else "")
        host_header = parts.netloc.rpartition("@")[2]
        pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        return Destination(url=pinned, address=address, server_name=host, host_header=host_header)


class _PinnedAdapter(HTTPAdapter):
    """Connects to the address in the URL and checks the TLS certificate against the original name."""

    def __init__(self, server_name: str) -> None:
        self.server_name = server_name
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self.server_name
            pool_kwargs["assert_hostname"] = self.server_name
        return host_params, pool_kwargs


def post(
    destination: Destination,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    proxy: str = "",
    verify: bool | str = True,
) -> requests.Response:
    """POST to a checked destination, never following redirects nor the environment's proxy settings
    (the operator's ``proxy`` only, if any). The reply's body is left unread (``stream``): callers
    keep its status only, and a receiver cannot make the control plane download gigabytes."""
    with requests.Session() as session:
        session.trust_env = False
        session.mount("http://", _PinnedAdapter(destination.server_name))
        session.mount("https://", _PinnedAdapter(destination.server_name))
        return session.post(
            destination.url,
            data=body,
            headers={**headers, "Host": destination.host_header},
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            verify=verify,
            proxies={"http": proxy, "https": proxy} if proxy else {},
        )
