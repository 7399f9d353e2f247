"""JupyterHub configuration for Himalia, shared by ``hub_config/jupyterhub_config.py`` and Zero to JupyterHub.

``configure(c)`` sets up, from environment variables or a YAML file:

- login with oauthenticator's ``GenericOAuthenticator`` against an OpenID Connect provider
  (endpoints discovered from the issuer unless given), groups managed by the provider
  (``manage_groups``), ``allowed_groups`` and ``admin_groups``, auth state encrypted and refreshed;
- the control plane as the managed service ``himalia`` (``himalia serve``), the roles it needs to
  read users and groups, and the access scope every user and every server token needs to reach it;
- the tiered spawner (local processes or KubeSpawner) that asks the service for tiers, and the
  hub's pages naming each server's tier (``configure_pages``);
- the idle culler.

Settings (environment, or the ``oidc:`` / ``hub:`` mappings of the YAML file named by
``$HIMALIA_HUB_CONFIG``; the environment wins):

===============================  ==========================================================
``HIMALIA_OIDC_ISSUER``          issuer URL; its discovery document gives the endpoints
``HIMALIA_OIDC_AUTHORIZE_URL``   ``…_TOKEN_URL``, ``…_USERINFO_URL``: endpoints, when not discovered
``HIMALIA_OIDC_CLIENT_ID``       ``…_CLIENT_SECRET``: the hub's client at the provider
``HIMALIA_OIDC_SCOPES``          space-separated, default ``openid profile email groups``
``HIMALIA_OIDC_USERNAME_CLAIM``  default ``preferred_username``
``HIMALIA_OIDC_GROUPS_CLAIM``    default ``groups``
``HIMALIA_OIDC_ALLOWED_GROUPS``  comma-separated; empty allows every authenticated person
``HIMALIA_OIDC_ADMIN_GROUPS``    comma-separated, default ``admins``
``HIMALIA_OIDC_CALLBACK_URL``    default ``http://127.0.0.1:8000/hub/oauth_callback``
``HIMALIA_SERVICE_TOKEN``        the service's hub API token (also lets the hub act in Himalia)
``HIMALIA_SERVICE_PORT``         where the service listens, default 10101
``HIMALIA_CONFIG``               the service's configuration file (``c.ControlPlane.*``, ``c.Mailer.*``,
                                 ``c.HubService.*``...); else ``himalia_config.py`` on the Jupyter config path
===============================  ==========================================================
"""

import os
import sys
import time
from pathlib import Path
from typing import Any

import requests
import yaml

SERVICE = "himalia"
#: Environment of the hub that the service needs and that single-user servers must never get.
SERVICE_ENVIRONMENT = (
    *("HIMALIA_HOME", "HIMALIA_DB_URL", "HIMALIA_SECRET_KEYS", "HIMALIA_AUDIT_KEY", "HIMALIA_TIERS_FILE"),
    *("HIMALIA_WEBHOOK_KEY", "HIMALIA_SMTP_HOST", "HIMALIA_SMTP_PORT", "HIMALIA_SMTP_USER", "HIMALIA_SMTP_PASSWORD"),
    *("HIMALIA_SMTP_SENDER", "HIMALIA_EXECUTOR_CLASS", "HIMALIA_KUBERNETES_NAMESPACE", "HIMALIA_KUBERNETES_IMAGE"),
    *("HIMALIA_KUBERNETES_API_URL", "HIMALIA_KUBERNETES_SERVICE_ACCOUNT", "HIMALIA_USER_ISOLATION"),
    "HIMALIA_PUBLIC_URL",  # where people open the hub: the links of reports start there
    "HIMALIA_CURRENCY",  # the currency of the tiers' cost_per_hour, shown in the spawn form
    "HIMALIA_CONFIG",  # the service's himalia_config.py: every c.ControlPlane/Mailer/HubService/... setting
)


def settings(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``HIMALIA_*`` settings: the YAML file's (``oidc.issuer`` is ``HIMALIA_OIDC_ISSUER``), then the environment."""
    environ = dict(os.environ if environ is None else environ)
    merged: dict[str, str] = {}
    if path := environ.get("HIMALIA_HUB_CONFIG"):
        document = yaml.safe_load(Path(path).read_text()) or {}
        for section, values in document.items():
            for name, value in (values or {}).items():
                if isinstance(value, list):
                    value = ("," if name.endswith("groups") else " ").join(str(v) for v in value)
                merged[f"HIMALIA_{section}_{name}".upper()] = str(value)
    merged.update({k: v for k, v in environ.items() if k.startswith("HIMALIA_")})
    return merged


def _configured(section: Any, name: str) -> list[dict[str, Any]]:
    """A list setting made earlier in the configuration (other services, roles), else none."""
    return list(section[name]) if name in section else []


def _split(value: str) -> set[str]:
    return {item.strip() for item in value.split(",") if item.strip()}


def _discover(issuer: str, patience: float = 30) -> dict[str, Any]:
    """The provider's discovery document, waiting a little for a provider that starts with the hub."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    deadline = time.monotonic() + patience
    while True:
        try:
            answer = requests.get(url, timeout=10)
            answer.raise_for_status()
            return answer.json()
        except requests.RequestException as error:
            if time.monotonic() > deadline:
                reason = f"The OpenID Connect provider's discovery document {url} is unreachable: {error}"
                raise SystemExit(reason) from None
            time.sleep(0.5)


def configure_login(c: Any, config: dict[str, str]) -> None:
    endpoints = {
        "authorize_url": config.get("HIMALIA_OIDC_AUTHORIZE_URL"),
        "token_url": config.get("HIMALIA_OIDC_TOKEN_URL"),
        "userdata_url": config.get("HIMALIA_OIDC_USERINFO_URL"),
    }
    if not all(endpoints.values()):
        issuer = config.get("HIMALIA_OIDC_ISSUER")
        if not issuer:
            raise SystemExit("Set HIMALIA_OIDC_ISSUER (or the three endpoint URLs) to log in through OpenID Connect.")
        found = _discover(issuer)
        keys = {"authorize_url": "authorization_endpoint", "token_url": "token_endpoint"}
        keys["userdata_url"] = "userinfo_endpoint"
        endpoints = {name: value or found[keys[name]] for name, value in endpoints.items()}
    oauth = c.GenericOAuthenticator
    c.JupyterHub.authenticator_class = "generic-oauth"
    for name, value in endpoints.items():
        setattr(oauth, name, value)
    oauth.client_id = config["HIMALIA_OIDC_CLIENT_ID"]
    oauth.client_secret = config["HIMALIA_OIDC_CLIENT_SECRET"]
    oauth.oauth_callback_url = config.get("HIMALIA_OIDC_CALLBACK_URL", "http://127.0.0.1:8000/hub/oauth_callback")
    oauth.scope = config.get("HIMALIA_OIDC_SCOPES", "openid profile email groups").split()
    oauth.username_claim = config.get("HIMALIA_OIDC_USERNAME_CLAIM", "preferred_username")
    oauth.manage_groups = True
    oauth.auth_state_groups_key = "oauth_user." + config.get("HIMALIA_OIDC_GROUPS_CLAIM", "groups")
    oauth.admin_groups = _split(config.get("HIMALIA_OIDC_ADMIN_GROUPS", "admins"))
    allowed = _split(config.get("HIMALIA_OIDC_ALLOWED_GROUPS", ""))
    if allowed:
        oauth.allowed_groups = allowed
    else:
        oauth.allow_all = True
    # Auth state (tokens from the provider) is encrypted with $JUPYTERHUB_CRYPT_KEY and refreshed
    # before a spawn and every five minutes, so a person removed from a group loses it promptly.
    c.Authenticator.enable_auth_state = True
    c.Authenticator.refresh_pre_spawn = True
    c.Authenticator.auth_refresh_age = 300


def service_api_url(port: int | str) -> str:
    return f"http://127.0.0.1:{port}/services/{SERVICE}/himalia/api/v1"


def configure_service(c: Any, config: dict[str, str], token: str) -> None:
    """The control plane as the managed service ``himalia``, and the scopes that reach it."""
    port = config.get("HIMALIA_SERVICE_PORT", "10101")
    environment = {name: config[name] for name in SERVICE_ENVIRONMENT if name in config}
    c.JupyterHub.services = [
        *[s for s in _configured(c.JupyterHub, "services") if s.get("name") != SERVICE],
        {
            "name": SERVICE,
            "display": True,
            "url": f"http://127.0.0.1:{port}",
            "command": [sys.executable, "-m", "himalia", "serve", "--hub"],
            "api_token": token,
            "oauth_no_confirm": True,
            "environment": environment,
        },
    ]
    access = f"access:services!service={SERVICE}"
    c.JupyterHub.load_roles = [
        *[r for r in _configured(c.JupyterHub, "load_roles") if r.get("name") not in {"user", "himalia-service"}],
        {"name": "user", "scopes": ["self", access]},
        {"name": "himalia-service", "services": [SERVICE], "scopes": ["list:users", "read:users", "read:groups"]},
    ]
    # The token in every server (and its kernels): its owner's identity, usable at the service.
    c.Spawner.server_token_scopes = ["users:activity!user", access]
    c.TieredSpawner.himalia_url = service_api_url(port)
    c.TieredSpawner.himalia_token = token


#: Himalia's overrides of JupyterHub's page templates (each extends the hub's own).
TEMPLATES = Path(__file__).parent / "templates"


def configure_pages(c: Any) -> None:
    """The hub's pages name each server's tier: the spawn pending page (shown when a start takes
    longer than the hub waits, ``slow_spawn_timeout``) through its template here, the admin page in
    its Profile column (``TieredSpawner.show_tier``)."""
    c.JupyterHub.template_paths = [str(TEMPLATES), *_configured(c.JupyterHub, "template_paths")]


def configure_culler(c: Any, timeout: int = 3600) -> None:
    """Stop servers idle for ``timeout`` seconds (their usage records close with them)."""
    c.JupyterHub.services = [
        *[s for s in _configured(c.JupyterHub, "services") if s.get("name") != "idle-culler"],
        {"name": "idle-culler", "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={timeout}"]},
    ]
    c.JupyterHub.load_roles = [
        *[r for r in _configured(c.JupyterHub, "load_roles") if r.get("name") != "idle-culler"],
        {
            "name": "idle-culler",
            "services": ["idle-culler"],
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        },
    ]


def configure(c: Any, spawner: str = "local", environ: dict[str, str] | None = None) -> None:
    """Everything above; ``spawner`` is ``local`` (processes on the hub's machine) or ``kubernetes``."""
    config = settings(environ)
    token = config.get("HIMALIA_SERVICE_TOKEN")
    if not token:
        raise SystemExit("Set HIMALIA_SERVICE_TOKEN: the Himalia service's JupyterHub API token (any long secret).")
    configure_login(c, config)
    configure_service(c, config, token)
    configure_culler(c)
    configure_pages(c)
    c.Spawner.default_url = "/lab"
    if spawner == "kubernetes":
        c.JupyterHub.spawner_class = "himalia.hub.kubespawner.KubernetesTierSpawner"
    else:
        c.JupyterHub.spawner_class = "himalia.hub.spawners.LocalTierSpawner"
