"""JupyterHub with Himalia on one machine: `make demo` runs it, the end-to-end tests too.

Login through the dev OpenID Connect provider (hub_config/dev-idp, started first), the control
plane as the hub service `himalia`, workspaces as local processes sized by the tiers of
hub_config/tiers.yaml. All state lives in $HIMALIA_HUB_STATE (default .himalia-hub/ at the
repository root). Kubernetes uses himalia.hub.setup.configure the same way (see values.yaml).
"""

import os
import secrets
from pathlib import Path

from himalia.hub.setup import configure

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - provided by JupyterHub

here = Path(__file__).resolve().parent
state = Path(os.environ.get("HIMALIA_HUB_STATE", here.parent / ".himalia-hub")).resolve()
state.mkdir(parents=True, exist_ok=True)

# Servers and scenario kernels run as their people's own OS accounts (UserIsolation): nothing the
# hub writes may be theirs to read. The state folder stays passable, not listable: the demo's
# warehouse lies in it, shared by every account (himalia.demo.seed.share_with_every_account).
os.umask(0o077)
os.chmod(state, 0o711)
for made_earlier in ("jupyterhub.sqlite", "jupyterhub_cookie_secret", "service-token", "auth-state.key"):
    if (state / made_earlier).is_file():
        os.chmod(state / made_earlier, 0o600)
if os.getuid() != 0:
    # Switching accounts needs root: a development hub of an ordinary user shares its account, unsafely.
    os.environ.setdefault("HIMALIA_USER_ISOLATION", "shared_account_unsafe")


def secret_file(name: str, make: str) -> str:
    """A secret kept in the state folder (mode 0600), made on first start."""
    path = state / name
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(make)
    return path.read_text().strip()


# The dev provider's client; a real deployment sets these (or HIMALIA_HUB_CONFIG) itself.
port = int(os.environ.get("HIMALIA_HUB_PORT", "8000"))
os.environ.setdefault("HIMALIA_OIDC_ISSUER", "http://127.0.0.1:9000")
os.environ.setdefault("HIMALIA_OIDC_CLIENT_ID", "himalia-hub")
os.environ.setdefault("HIMALIA_OIDC_CLIENT_SECRET", "himalia-dev-secret")
os.environ.setdefault("HIMALIA_PUBLIC_URL", f"http://127.0.0.1:{port}/")  # the links of reports
# No fixed callback: the hub calls back on the host the browser used (127.0.0.1 or localhost, both
# registered at the dev provider), where its OAuth state cookie lives.
os.environ.setdefault("HIMALIA_OIDC_CALLBACK_URL", "")
os.environ.setdefault("HIMALIA_OIDC_ALLOWED_GROUPS", "admins,data_team,analysts,readers")
os.environ.setdefault("HIMALIA_OIDC_ADMIN_GROUPS", "admins")
os.environ.setdefault("HIMALIA_HOME", str(state / "himalia"))
os.environ.setdefault("HIMALIA_TIERS_FILE", str(here / "tiers.yaml"))
os.environ.setdefault("HIMALIA_SERVICE_TOKEN", secret_file("service-token", secrets.token_hex(32)))

configure(c, spawner="local")

c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ.get('HIMALIA_HUB_API_PORT', '8081')}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('HIMALIA_PROXY_API_PORT', '8001')}"
c.ConfigurableHTTPProxy.pid_file = str(state / "proxy.pid")
proxy = here.parent / "node_modules" / ".bin" / "configurable-http-proxy"
if proxy.exists():
    c.ConfigurableHTTPProxy.command = [str(proxy)]
c.JupyterHub.db_url = f"sqlite:///{state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(state / "jupyterhub_cookie_secret")
c.CryptKeeper.keys = [bytes.fromhex(secret_file("auth-state.key", secrets.token_hex(32)))]
c.JupyterHub.allow_named_servers = True  # several workspaces per person, within each tier's limits
c.LocalTierSpawner.shared_home_template = str(state / "users" / "{username}")  # shared_account_unsafe only
if os.getuid() == 0:
    c.Spawner.args = ["--allow-root"]
