"""Himalia's API as the Jupyter server serves it: Jupyter's handler base, Himalia's own authentication.

Imported when the extension starts the control plane, after the server answers (see ``extension``).
"""

from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler as JupyterAPIHandler

from himalia.api import routes
from himalia.api.base import APIHandler
from himalia.core.errors import Unauthenticated
from himalia.identity.caller import Caller

#: The setting naming the Himalia login of whoever the Jupyter server authenticates.
LOCAL_USER = "himalia_local_user"
HTTP_METHODS = ("get", "post", "put", "patch", "delete")


class _JupyterHosted(APIHandler):
    """Identity from the Jupyter server, unless the request carries a Himalia token."""

    async def host_caller(self) -> Caller | None:
        token = self.bearer_token()
        if token is not None and not self._jupyter_token_is(token):
            # Jupyter would fall back to its login cookie; the header's claim alone decides here.
            self.log_denied("invalid token")
            raise Unauthenticated("The token in the Authorization header is not valid.")
        if self.current_user is None:
            return None
        return await self.call(self.control_plane.users.sign_in, self.settings[LOCAL_USER], self.client_address)

    def _jupyter_token_is(self, token: str) -> bool:
        """Whether the Jupyter server authenticated this request by ``token``, this very header's."""
        jupyter: Any = self  # a JupyterHandler, once composed by ``jupyter_hosted``
        return bool(jupyter.token_authenticated) and jupyter.identity_provider.get_token(jupyter) == token

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        # Jupyter's APIHandler.finish forces JSON; reports, logs and exports set their own type.
        kwargs.setdefault("set_content_type", self._headers.get("Content-Type", "application/json"))
        return super().finish(*args, **kwargs)

    def check_xsrf_cookie(self) -> None:
        # A request with an Authorization header cannot be forged cross-site, and it authenticates
        # by that header or not at all (401, see ``authenticate``): only cookie requests are checked.
        if "Authorization" not in self.request.headers:
            super().check_xsrf_cookie()


def jupyter_hosted(handler: type[APIHandler]) -> type[APIHandler]:
    """``handler`` served by jupyter-server: Jupyter's handler base, Himalia's own authentication."""
    methods: dict[str, Any] = {
        name: allow_unauthenticated(getattr(handler, name)) for name in HTTP_METHODS if name in vars(handler)
    }
    return type(handler.__name__, (_JupyterHosted, handler, JupyterAPIHandler), methods)


def jupyter_routes(base_url: str) -> list[tuple[str, type[APIHandler]]]:
    """Every API route below the Jupyter server's ``base_url``."""
    return routes(base_url, adapt=jupyter_hosted)
