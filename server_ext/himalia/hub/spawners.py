"""In the hub: spawners that size workspaces by the control plane's hardware tiers.

The spawn form lists the tiers the user may choose, read from the Himalia service when the form
is rendered, so an administrator's change shows in the next form without a hub restart. Before
a server starts, the service admits it again (``POST /servers``): a tier missing from the form
cannot be had by naming it to the hub's REST API, and the per-user and overall limits hold.
The service records the server's usage from this admission until ``stop``.

``LocalTierSpawner`` runs each person's server on the hub's machine as that person's own OS
account, as JupyterHub's ``LocalProcessSpawner`` does: the account scenario kernels use too
(``UserIsolation``: ``himalia-{login}``, created on first spawn when the hub runs as root and
``create_accounts`` is on, a refusal naming it otherwise), its own groups only, its home as the
workspace. ``c.UserIsolation.mode = "shared_account_unsafe"`` runs every server as the hub's own
user in ``shared_home_template`` instead, where each can read the others' files and the hub's:
for development only. The tier's limits become
``MEM_LIMIT`` / ``CPU_LIMIT`` (shown by jupyter-resource-usage), and are enforced as far as one
machine allows without containers: an address-space limit per process (``RLIMIT_AS``, so a
process that allocates beyond it gets MemoryError; the server and each kernel get the limit
separately, it is not a cgroup total) and CPU affinity to as many cores as the limit rounds up
to (the first cores of the machine; not a fair share).
"""

import asyncio
import json
import math
import os
import resource
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from jupyterhub.spawner import LocalProcessSpawner, Spawner, set_user_setuid
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import Unicode, default
from traitlets.config import LoggingConfigurable

from himalia.compute.spawn_form import spawn_form, tier_label
from himalia.execution.accounts import IsolationUnavailable, OsAccount, UserIsolation
from himalia.wire.compute import DescribeTier


class TierRefused(web.HTTPError):
    """The control plane refused the tier; the hub relays the sentence to the person or API client."""


class TieredSpawner(LoggingConfigurable):
    """What every Himalia spawner shares: the tiers from the service, admission, usage, the environment.

    A mixin, first among a spawner's bases (``c.TieredSpawner.*`` configures every such spawner).
    """

    # Provided by the Spawner this is mixed into.
    user: Any
    name: str
    user_options: dict[str, Any]
    orm_spawner: Any

    himalia_url = Unicode(
        config=True,
        help="The Himalia service's API as the hub reaches it (…/services/himalia/himalia/api/v1).",
    )
    himalia_token = Unicode(
        config=True,
        help="The Himalia service's JupyterHub API token: the service lets its holder act as the hub.",
    )
    himalia_server_url = Unicode(
        config=True,
        help="The service's API as single-user servers reach it (their extension forwards there); default himalia_url.",
    )

    @default("himalia_server_url")
    def _default_server_url(self) -> str:
        return self.himalia_url

    usage_id: int | None = None

    async def _himalia(self, method: str, path: str, body: Any = None) -> Any:
        request = HTTPRequest(
            self.himalia_url.rstrip("/") + path,
            method=method,
            headers={"Authorization": f"token {self.himalia_token}", "Content-Type": "application/json"},
            body=json.dumps(body) if body is not None else ("" if method == "POST" else None),
            request_timeout=30,
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code == 599:
            raise web.HTTPError(503, f"The Himalia service is unreachable: {response.error}")
        reply = json.loads(response.body) if response.body else None
        if response.code >= 400:
            message = reply.get("message") if isinstance(reply, dict) else response.reason
            raise TierRefused(response.code, message, reason=message)
        return reply

    async def mirror_user(self) -> None:
        """Have Himalia re-read this person from the hub: the groups the provider sent at this login.

        Himalia stays the one that decides which tiers those groups allow; asking it to mirror
        first means a group added at the provider counts from the next login, not the next sync.
        """
        await self._himalia("POST", f"/hub/people/{quote(self.user.name, safe='')}")

    async def allowed_tiers(self) -> list[DescribeTier]:
        """The tiers this spawner's user may choose now, cheapest first."""
        await self.mirror_user()
        tiers = await self._himalia("GET", f"/tiers?user={quote(self.user.name)}")
        return [DescribeTier.model_validate(tier) for tier in tiers]

    def chosen_tier(self) -> str | None:
        options = self.user_options or {}
        return options.get("tier") or options.get("profile") or None

    def show_tier(self, tier: DescribeTier) -> None:
        """Name the server's tier where the hub's pages look: ``user_options['profile']``.

        JupyterHub's admin page shows it in its Profile column, the spawn pending page
        (``templates/spawn_pending.html``) above the progress bar. It is saved with the options,
        so a hub restarted meanwhile still shows the tier the server started on.
        """
        self.user_options = {**(self.user_options or {}), "tier": tier.name, "profile": tier_label(tier)}
        if self.orm_spawner is not None:
            self.orm_spawner.user_options = self.user_options

    async def admit(self) -> DescribeTier:
        """Ask the control plane to admit this server; returns the tier and opens its usage record."""
        body = {"user": self.user.name, "tier": self.chosen_tier(), "server_name": self.name}
        await self.mirror_user()  # a start through the hub's REST API shows no form first
        usage = await self._himalia("POST", "/servers", body)
        self.usage_id = usage["id"]
        tier = DescribeTier.model_validate(await self._himalia("GET", f"/tiers/{quote(usage['tier'])}"))
        self.log.info("Himalia admitted %s's server %r on the tier %s", self.user.name, self.name, tier.name)
        self.show_tier(tier)
        return tier

    async def release(self) -> None:
        if self.usage_id is not None:
            try:
                await self._himalia("DELETE", f"/servers/{self.usage_id}")
            except web.HTTPError as error:
                self.log.warning("Could not record the stop of usage %s: %s", self.usage_id, error.log_message)
            self.usage_id = None

    def himalia_env(self, tier: str) -> dict[str, str]:
        return {
            "HIMALIA_TIER": tier,
            "HIMALIA_SERVICE_URL": self.himalia_server_url,
            "HIMALIA_API_URL": self.himalia_server_url,
        }

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()  # type: ignore[misc]
        if self.usage_id is not None:
            state["himalia_usage_id"] = self.usage_id
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)  # type: ignore[misc]
        self.usage_id = state.get("himalia_usage_id")

    def clear_state(self) -> None:
        super().clear_state()  # type: ignore[misc]
        self.usage_id = None

    #: The tiers of the form last shown for this server, by name: the chosen one's label is known
    #: before the server starts, for the pending page.
    offered_tiers: dict[str, DescribeTier] = {}

    @default("options_form")
    def _tier_form(self) -> Callable[[Spawner], Any]:
        async def form(spawner: Spawner) -> str:
            assert isinstance(spawner, TieredSpawner)
            tiers = await spawner.allowed_tiers()
            spawner.offered_tiers = {tier.name: tier for tier in tiers}
            return spawn_form(tiers, spawner.chosen_tier())

        return form

    def options_from_form(self, formdata: dict[str, list[str]]) -> dict[str, Any]:
        # Our form posts 'tier'; KubeSpawner's profile form, in API clients written for it, 'profile'.
        name = (formdata.get("tier") or formdata.get("profile") or [""])[0] or None
        tier = self.offered_tiers.get(name or "")
        return {"tier": name, "profile": tier_label(tier)} if tier is not None else {"tier": name}

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)  # type: ignore[misc]
        await self.release()


def _limit_process(memory: int | None, cores: float | None) -> Callable[[], None]:
    def limit() -> None:
        if memory:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if cores:
            available = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, available[: max(1, min(len(available), math.ceil(cores)))])

    return limit


class LocalTierSpawner(TieredSpawner, LocalProcessSpawner):
    """Local processes sized by tiers, each as its person's own OS account (see the module docstring)."""

    tier: DescribeTier | None = None
    #: The account the server runs as; ``None`` when sharing the hub's (``shared_account_unsafe``).
    account: OsAccount | None = None

    shared_home_template = Unicode(
        "/tmp/{username}",
        config=True,
        help="""Workspace of a person's server when every server shares the hub's OS account
        (`UserIsolation.mode = 'shared_account_unsafe'`); `{username}` is the hub's user name.""",
    )

    def isolation(self) -> UserIsolation:
        return UserIsolation(parent=self)

    def shared_home(self) -> str:
        return self.shared_home_template.format(username=self.user.name)

    def make_preexec_fn(self, name: str) -> Callable[[], None]:
        base = self._become_account() if self.account is not None else self._enter_shared_home()
        limit = _limit_process(
            self.tier.memory_limit if self.tier else None, self.tier.cpu_limit if self.tier else None
        )

        def preexec() -> None:
            base()
            limit()

        return preexec

    def _become_account(self) -> Callable[[], None]:
        """JupyterHub's switch to the account (its uid, gid and own groups, its home), files private."""
        assert self.account is not None
        switch = set_user_setuid(self.account.name)

        def become() -> None:
            os.umask(0o077)
            switch()

        return become

    def _enter_shared_home(self) -> Callable[[], None]:
        home = self.shared_home()

        def enter() -> None:
            os.makedirs(home, 0o700, exist_ok=True)
            os.chdir(home)

        return enter

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        """The server's ``USER`` and ``HOME`` are its account's (JupyterHub's would look up the hub's user name)."""
        env["USER"] = self.account.name if self.account is not None else self.user.name
        env["HOME"] = str(self.account.home) if self.account is not None else self.shared_home()
        env["SHELL"] = "/bin/bash"  # the account has no login shell; the lab's terminals need one
        return env

    def move_certs(self, paths: dict[str, str]) -> dict[str, str]:
        if self.account is None:
            return paths
        raise web.HTTPError(500, "Internal SSL is not supported by the LocalTierSpawner with OS accounts.")

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        if self.tier is not None:
            env.update(self.himalia_env(self.tier.name))
        return env

    async def start(self) -> Any:
        try:  # useradd may take a moment: not on the hub's event loop
            self.account = await asyncio.to_thread(self.isolation().for_login, self.user.name)
        except IsolationUnavailable as error:
            raise web.HTTPError(503, f"Your server cannot start: {error.message}.", reason=error.message) from None
        self.tier = tier = await self.admit()
        self.mem_limit, self.mem_guarantee = tier.memory_limit, tier.memory_request
        self.cpu_limit, self.cpu_guarantee = tier.cpu_limit, tier.cpu_request
        try:
            return await super().start()
        except BaseException:
            await self.release()
            raise
