"""The local OpenID Connect provider (``hub_config/dev-idp``) as a subprocess, for tests.

    with DevIdentityProvider(free_port(), "himalia-hub", "s3cret", ["http://127.0.0.1:8000/hub/oauth_callback"]) as idp:
        requests.get(idp.discovery_url).json()

The provider keeps everything in memory and makes new signing and cookie keys at each start, so
each instance is a clean slate. Its output (one line per sign-in, errors) goes to a temporary file
that ``output()`` reads, and into the error raised when it fails to start.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import requests

REPO = Path(__file__).resolve().parents[2]
IDP_DIR = REPO / "hub_config" / "dev-idp"
SERVER = IDP_DIR / "server.mjs"
ACCOUNTS = IDP_DIR / "accounts.json"
#: The password of alice, bob and carol in ``accounts.json``.
DEMO_PASSWORD = "himalia-demo"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DevIdentityProviderError(RuntimeError):
    pass


class DevIdentityProvider:
    """``node hub_config/dev-idp/server.mjs`` on ``127.0.0.1:port``, configured for one client."""

    def __init__(
        self,
        port: int,
        client_id: str,
        client_secret: str,
        redirect_uris: Sequence[str],
        *,
        access_token_ttl: int | None = None,
        accounts: Path | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self.port = port
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = list(redirect_uris)
        self.access_token_ttl = access_token_ttl
        self.accounts = accounts or ACCOUNTS
        self.startup_timeout = startup_timeout
        self.issuer = f"http://127.0.0.1:{port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._final_output = ""

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def _environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            "IDP_PORT": str(self.port),
            "IDP_HOST": "127.0.0.1",
            "IDP_ISSUER": self.issuer,
            "IDP_CLIENT_ID": self.client_id,
            "IDP_CLIENT_SECRET": self.client_secret,
            "IDP_REDIRECT_URIS": ",".join(self.redirect_uris),
            "IDP_ACCOUNTS": str(self.accounts),
        }
        env.pop("IDP_COOKIE_KEYS", None)
        if self.access_token_ttl is not None:
            env["IDP_ACCESS_TOKEN_TTL"] = str(self.access_token_ttl)
        else:
            env.pop("IDP_ACCESS_TOKEN_TTL", None)
        return env

    def start(self) -> Self:
        if self._process is not None:
            raise DevIdentityProviderError("the dev identity provider is already running")
        if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
            raise DevIdentityProviderError(
                f"{IDP_DIR / 'node_modules'} is missing: install the provider's dependencies with "
                "`npm ci --prefix hub_config/dev-idp`"
            )
        node = shutil.which("node")
        if node is None:
            raise DevIdentityProviderError("`node` (Node.js 20 or later) is not on PATH")
        self._log = tempfile.TemporaryFile(prefix="dev-idp-")  # noqa: SIM115 - open while the provider runs
        self._process = subprocess.Popen(
            [node, str(SERVER)],
            cwd=IDP_DIR,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise DevIdentityProviderError(
                    f"the dev identity provider exited with status {code} while starting:\n{self.output()}"
                )
            try:
                response = requests.get(self.discovery_url, timeout=2)
                if response.ok and response.json().get("issuer") == self.issuer:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise DevIdentityProviderError(
                    f"the dev identity provider did not answer {self.discovery_url} within "
                    f"{self.startup_timeout:.0f} s:\n{self.output()}"
                )
            time.sleep(0.05)

    def output(self) -> str:
        """Everything the provider printed so far (stdout and stderr), also once it stopped."""
        if self._log is None:
            return self._final_output
        self._log.seek(0)
        return self._log.read().decode("utf-8", errors="replace")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if self._log is not None:
            self._final_output = self.output()
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
