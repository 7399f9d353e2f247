"""The kernel client: what ``import himalia`` gives a notebook.

It reaches the control plane with its user's token, never with database credentials: in a
kernel the platform starts, from ``HIMALIA_API_URL``, ``HIMALIA_TOKEN``, ``HIMALIA_PROJECT`` and
``HIMALIA_RUN_ID`` (under JupyterHub, the workspace's ``JUPYTERHUB_API_TOKEN``); in standalone
mode, from the running Jupyter server that hosts the Himalia extension, with that server's token.

A kernel knows its project by one rule, first match wins: the ``project=`` a call names, then
``$HIMALIA_PROJECT`` (scenario runs set it), then the project its user last chose in the lab's
Himalia sidebar (``GET /me/project``; projects have no folders, so a notebook's path says
nothing). Without any, the error says how to choose.

A dataset is read where it lives when its user may use the connection (its secrets fetched per
use, every fetch audited, never in a repr or an error message); otherwise, when its user may
read the project, through the platform (``GET …/datasets/{name}/data``, an Arrow stream): the
connection's credentials stay with the people who may use it, as Dataiku's project readers.

It talks HTTP only: the store and the services stay in the control plane. The drivers (SQLAlchemy,
fsspec, DuckDB) and pandas are imported when data is first read or written, so that touching
``himalia`` in every kernel costs little more than ``requests``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import requests

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from sqlalchemy import Engine

    from himalia.data.drivers import UsableConnection

API_PATH = "himalia/api/v1"
#: How many recent metric values a dataset's card reads (its sparklines' history).
HISTORY_LIMIT = 500
#: How long one poll of a followed run waits for it to change, in seconds.
RUN_WAIT_SECONDS = 30
ARROW_STREAM = "application/vnd.apache.arrow.stream"
NO_PROJECT = (
    "No project: choose one in the Himalia sidebar (the moon on the left), pass project='KEY', or set HIMALIA_PROJECT."
)
NOT_FOUND = (
    "No Himalia control plane found: run this in a kernel started by Himalia or by a Jupyter server with "
    "the Himalia extension, or set HIMALIA_API_URL and HIMALIA_TOKEN."
)


class HimaliaClientError(RuntimeError):
    """One sentence saying what went wrong; never a secret, never a stack of connection errors."""


@dataclass(frozen=True)
class Platform:
    api_url: str
    token: str
    project: str | None
    run_id: str | None

    def __repr__(self) -> str:
        return f"Platform(api_url={self.api_url!r}, project={self.project!r}, run_id={self.run_id!r})"


def _standalone_servers() -> list[tuple[str, str]]:
    from jupyter_server.serverapp import list_running_servers

    return [(server["url"], server.get("token", "")) for server in list_running_servers()]


def discover() -> Platform:
    """Where the control plane is and who we are to it."""
    project, run_id = os.environ.get("HIMALIA_PROJECT"), os.environ.get("HIMALIA_RUN_ID")
    # Under JupyterHub a workspace's kernels hold its owner's hub token, which the service accepts.
    token = os.environ.get("HIMALIA_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN")
    if os.environ.get("HIMALIA_API_URL") and token:
        return Platform(os.environ["HIMALIA_API_URL"].rstrip("/"), token, project, run_id)
    for url, token in _standalone_servers():
        api_url = url.rstrip("/") + "/" + API_PATH
        try:
            # A server still starting its control plane holds the request until it serves the API.
            answer = requests.get(f"{api_url}/me", headers={"Authorization": f"token {token}"}, timeout=(5, 60))
        except requests.RequestException:
            continue
        if answer.status_code == 200:
            return Platform(api_url, token, project, run_id)
    raise HimaliaClientError(NOT_FOUND)


class Client:
    """The HTTP client of the control plane's API, for one user."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._http = requests.Session()
        self._http.headers["Authorization"] = f"token {platform.token}"

    def __repr__(self) -> str:
        return f"<himalia.Client {self.platform!r}>"

    def project(self, project: str | None = None) -> str:
        """``project``, else ``$HIMALIA_PROJECT``, else the project chosen in the lab's sidebar."""
        chosen = project or self.platform.project or self.request("GET", "/me/project")["project"]
        if not chosen:
            raise HimaliaClientError(NO_PROJECT)
        return str(chosen)

    def response(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """The answer to a request, or ``HimaliaClientError`` with the control plane's sentence."""
        try:
            response = self._http.request(method, f"{self.platform.api_url}{path}", timeout=60, **kwargs)
        except requests.RequestException:
            raise HimaliaClientError(f"The Himalia control plane at {self.platform.api_url} does not answer.") from None
        if response.status_code >= 400:
            try:
                message = response.json()["message"]
            except (ValueError, KeyError, TypeError):
                message = response.reason
            raise HimaliaClientError(f"{message} ({response.status_code} on {method} {path})")
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.response(method, path, **kwargs)
        return response.json() if response.content else None


@cache
def client() -> Client:
    return Client(discover())


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(part, safe="") for part in parts)


class Connection:
    """A data connection, reached with the caller's own permissions and credentials."""

    def __init__(self, name: str, api: Client | None = None) -> None:
        self.name = name
        self._api = api or client()

    def __repr__(self) -> str:
        return f"<himalia.Connection {self.name!r}>"

    def _usable(self) -> UsableConnection:
        from himalia.data.drivers import UsableConnection

        credentials = self._api.request("GET", _path("connections", self.name, "credentials"))
        return UsableConnection(**credentials)

    def engine(self) -> Engine:
        """A SQLAlchemy engine (``sql`` connections)."""
        from himalia.data.drivers import sql_engine

        usable = self._usable()
        if usable.type != "sql":
            raise HimaliaClientError(f"'{self.name}' holds files: use .fs().")
        return sql_engine(usable, writable=True)

    def read_sql(self, query: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run a query (``:name`` bound parameters) and return a DataFrame."""
        import pandas as pd
        from sqlalchemy import text

        from himalia.data.drivers import driver_message, sql_engine

        usable = self._usable()
        engine = sql_engine(usable)
        try:
            with engine.connect() as sql:
                return pd.read_sql(text(query), sql, params=dict(params or {}))
        except Exception as error:
            message = driver_message(error, usable.secrets)
            raise HimaliaClientError(f"The query on '{self.name}' failed: {message}") from None
        finally:
            engine.dispose()

    def fs(self) -> Any:
        """An fsspec filesystem rooted at the connection's URL (``files`` connections)."""
        import fsspec
        from fsspec.implementations.dirfs import DirFileSystem

        from himalia.data.drivers import storage_options

        usable = self._usable()
        if usable.type != "files":
            raise HimaliaClientError(f"'{self.name}' is a SQL connection: use .engine() or .read_sql().")
        filesystem, root = fsspec.core.url_to_fs(usable.params["url"], **storage_options(usable.params, usable.secrets))
        return DirFileSystem(root, filesystem)


class Dataset:
    """A dataset of the current project, read and written where it lives."""

    def __init__(self, name: str, project: str | None = None, api: Client | None = None) -> None:
        self._api = api or client()
        self.name, self.project = name, self._api.project(project)

    def __repr__(self) -> str:
        return f"<himalia.Dataset {self.project}/{self.name}>"

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = self._api.request("GET", _path("projects", self.project, "datasets", self.name))
        return described

    def summary(self) -> dict[str, Any]:
        """Its description, its checks with their last results and its recent metric values by metric."""
        base = ("projects", self.project, "datasets", self.name)
        values = self._api.request("GET", _path(*base, "metrics"), params={"limit": HISTORY_LIMIT})
        history: dict[str, list[Any]] = {}
        for value in values:  # oldest first
            history.setdefault(value["metric"], []).append(value["value"])
        return {
            "project": self.project,
            "dataset": self.describe(),
            "checks": self._api.request("GET", _path(*base, "checks")),
            "history": history,
        }

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """In a notebook: its card (columns, checks' outcomes, metrics and their history), as a
        widget with Refresh and Run checks where ipywidgets is installed, as HTML elsewhere."""
        from himalia.kernel.widgets import View, dataset_html

        try:
            card = dataset_html(self.summary())
        except HimaliaClientError as error:
            return {"text/plain": f"{self!r}: {error}"}

        def run_checks() -> str:
            Checks(self.name, self.project, self._api).run(show_progress=False)
            return dataset_html(self.summary())

        view = View(card, {"Refresh": lambda: dataset_html(self.summary()), "Run checks": run_checks})
        return {**view._repr_mimebundle_(include, exclude), "text/plain": repr(self)}

    def preview(self, rows: int = 10) -> pd.DataFrame:
        """The first ``rows`` rows, to look at."""
        return self.to_pandas(limit=rows)

    def checks(self) -> Checks:
        return Checks(self.name, self.project, self._api)

    @property
    def schema(self) -> list[dict[str, str]]:
        columns: list[dict[str, str]] = self.describe()["columns"] or []
        return columns

    def to_pandas(self, limit: int | None = None, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The rows (the first ``limit``; only ``columns``), read as ``to_arrow`` reads them."""
        described = self.describe()
        if not described["can_use_connection"]:
            return self._through_platform(limit, columns).to_pandas()
        return self._where_it_lives(described, limit, columns)

    def to_arrow(self, limit: int | None = None, columns: Sequence[str] | None = None) -> pa.Table:
        """The rows as an Arrow table: where they live if I may use the connection, else through the platform."""
        import pyarrow as pa

        described = self.describe()
        if not described["can_use_connection"]:
            return self._through_platform(limit, columns)
        return pa.Table.from_pandas(self._where_it_lives(described, limit, columns), preserve_index=False)

    def _where_it_lives(
        self, described: dict[str, Any], limit: int | None, columns: Sequence[str] | None
    ) -> pd.DataFrame:
        import pandas as pd
        from sqlalchemy import select

        from himalia.data.drivers import duckdb_for, files_relation_sql, files_url, sql_engine, sql_source

        known = [column["name"] for column in described["columns"] or []]
        unknown = [name for name in columns or () if name not in known]
        if unknown:
            raise HimaliaClientError(f"{self.name} has no column '{unknown[0]}'.")
        usable = Connection(described["connection"], self._api)._usable()
        if usable.type == "files":
            with duckdb_for(usable) as duck:
                chosen = ", ".join('"' + name.replace('"', '""') + '"' for name in columns) if columns else "*"
                scan = f"SELECT {chosen} FROM {files_relation_sql(described['format'])}"
                arguments: list[Any] = [files_url(usable.params, described["path"])]
                if limit is not None:
                    scan, arguments = scan + " LIMIT ?", [*arguments, int(limit)]
                return duck.execute(scan, arguments).df()
        engine = sql_engine(usable)
        try:
            source = sql_source(
                engine, table=described["table"], db_schema=described["db_schema"], query=described["query"]
            )
            statement = select(*[source.c[name] for name in columns]) if columns else select(source)
            if limit is not None:
                statement = statement.limit(limit)
            with engine.connect() as sql:
                return pd.read_sql(statement, sql)
        finally:
            engine.dispose()

    def _through_platform(self, limit: int | None, columns: Sequence[str] | None) -> pa.Table:
        """The control plane reads the rows; the stream's last batch says whether it stopped early."""
        import pyarrow as pa

        params: dict[str, Any] = {"format": "arrow"}
        if limit is not None:
            params["limit"] = int(limit)
        if columns:
            params["columns"] = ",".join(columns)
        path = _path("projects", self.project, "datasets", self.name, "data")
        response = self._api.response("GET", path, params=params, headers={"Accept": ARROW_STREAM}, stream=True)
        batches, metadata = [], None
        response.raw.decode_content = True
        try:
            reader = pa.ipc.open_stream(response.raw)
            while True:
                try:
                    batch, metadata = reader.read_next_batch_with_custom_metadata()
                except StopIteration:
                    break
                batches.append(batch)
        except (pa.ArrowInvalid, requests.RequestException, OSError):
            metadata = None
        finally:
            response.close()
        ending = {key.decode(): value.decode() for key, value in (metadata or {}).items()}
        if "himalia.rows" not in ending:  # a complete stream ends with the batch that says how it ended
            raise HimaliaClientError(f"The read of {self.project}/{self.name} through the platform was cut short.")
        rows = ending.get("himalia.rows", "?")
        if ending.get("himalia.stopped_by") == "limit" and limit is None:
            warnings.warn(
                f"{self.name}: the platform sent its default of {rows} rows and more exist; pass limit=.", stacklevel=3
            )
        elif ending.get("himalia.stopped_by") == "max_bytes":
            warnings.warn(
                f"{self.name}: the platform stopped after {rows} rows at its size limit; ask for fewer columns.",
                stacklevel=3,
            )
        return pa.Table.from_batches(batches, schema=reader.schema)

    def write_pandas(self, frame: pd.DataFrame, mode: Literal["overwrite", "append"] = "overwrite") -> None:
        """Write ``frame`` to the dataset's table or file; needs write_content and a writable connection."""
        from himalia.data.drivers import sql_engine

        if mode not in ("overwrite", "append"):
            raise HimaliaClientError("mode is 'overwrite' or 'append'.")
        described = self.describe()
        if not described["can_write"]:
            raise HimaliaClientError(
                f"You may not write {self.project}/{self.name}: it needs write_content on the project "
                f"and a connection that allows writes."
            )
        usable = Connection(described["connection"], self._api)._usable()
        if described["kind"] == "query":
            raise HimaliaClientError(f"{self.name} is a query: write to a table or files dataset.")
        if usable.type == "files":
            if mode == "append" or any(c in described["path"] for c in "*?["):
                raise HimaliaClientError("File datasets are written whole, to one path without wildcards.")
            with Connection(described["connection"], self._api).fs().open(described["path"], "wb") as handle:
                if described["format"] == "parquet":
                    frame.to_parquet(handle, index=False)
                else:
                    handle.write(frame.to_csv(index=False).encode())
        else:
            engine = sql_engine(usable, writable=True)
            try:
                frame.to_sql(
                    described["table"],
                    engine,
                    schema=described["db_schema"],
                    if_exists="replace" if mode == "overwrite" else "append",
                    index=False,
                )
            finally:
                engine.dispose()
        self._api.request("POST", _path("projects", self.project, "datasets", self.name, "schema"))


class Checks:
    """A dataset's checks, run from a notebook with their progress and outcomes shown."""

    def __init__(self, dataset: str, project: str | None = None, api: Client | None = None) -> None:
        self._api = api or client()
        self.dataset, self.project = dataset, self._api.project(project)

    def __repr__(self) -> str:
        return f"<himalia.Checks of {self.project}/{self.dataset}>"

    def run(self, wait: bool = True, show_progress: bool = True) -> dict[str, Any] | Future[dict[str, Any]]:
        """Compute what the checks need and judge them: the run's outcome and results; with
        ``wait=False`` a ``Future`` of them at once, the display updated when they end."""
        from himalia.kernel.widgets import View, checks_html, show

        view = View(checks_html(self.dataset, None))
        if show_progress:
            show(view)
        path = _path("projects", self.project, "datasets", self.dataset, "checks", "run")

        def go() -> dict[str, Any]:
            try:
                ran: dict[str, Any] = self._api.request("POST", path)
            except HimaliaClientError as error:
                view.update(checks_html(self.dataset, None, str(error)))
                raise
            view.update(checks_html(self.dataset, ran))
            return ran

        return go() if wait else _background().submit(go)


class Scenario:
    """A scenario of the project, run from a notebook with its live progress shown."""

    def __init__(self, scenario_id: str, project: str | None = None, api: Client | None = None) -> None:
        self._api = api or client()
        self.id, self.project = scenario_id, self._api.project(project)

    def __repr__(self) -> str:
        return f"<himalia.Scenario {self.project}/{self.id}>"

    def run_link(self, run_id: int) -> str | None:
        """The run's page in the lab: under JupyterHub the user's own server, else this Jupyter server."""
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
        api_url = self._api.platform.api_url
        if prefix is None and not api_url.endswith("/" + API_PATH):
            return None
        base = prefix if prefix is not None else api_url[: -len(API_PATH)]
        return f"{base.rstrip('/')}/lab?himalia-run={quote(self.project)}/{quote(self.id)}/{run_id}"

    def run(
        self,
        parameters: Mapping[str, Any] | None = None,
        variables: Mapping[str, Any] | None = None,
        wait: bool = True,
    ) -> dict[str, Any]:
        """Start a run; with ``wait`` return it once it ended, else at once (the display follows it)."""
        from himalia.kernel.widgets import View, run_html, show

        body = {"parameters": dict(parameters or {}), "variables": dict(variables or {})}
        started: dict[str, Any] = self._api.request(
            "POST", _path("projects", self.project, "scenarios", self.id, "run"), json=body
        )
        link = self.run_link(started["id"])
        view = View(run_html(started, link))
        show(view)
        if not wait:
            _background().submit(self._follow, started, view, link)
            return started
        return self._follow(started, view, link)

    def _follow(self, run: dict[str, Any], view: Any, link: str | None) -> dict[str, Any]:
        """The run once it ended, the display updated at each change (the API's long poll)."""
        from himalia.kernel.widgets import run_html

        path = _path("projects", self.project, "scenarios", self.id, "runs", str(run["id"]))
        seen: str | None = None
        while run["state"] in ("queued", "running"):
            headers = {"If-None-Match": seen} if seen else {}
            response = self._api.response("GET", path, params={"wait": RUN_WAIT_SECONDS}, headers=headers)
            seen = response.headers.get("ETag") or seen
            if response.status_code == 200 and response.content:
                run = response.json()
                view.update(run_html(run, link))
        return run


@cache
def _background() -> ThreadPoolExecutor:
    """The threads that follow what a notebook started with ``wait=False``."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="himalia-follow")


def connection(name: str) -> Connection:
    return Connection(name)


def dataset(name: str, project: str | None = None) -> Dataset:
    return Dataset(name, project)


def checks(dataset: str, project: str | None = None) -> Checks:
    return Checks(dataset, project)


def scenario(scenario_id: str, project: str | None = None) -> Scenario:
    return Scenario(scenario_id, project)


def parameters_form(notebook: str | None = None) -> Any:
    """A form of this notebook's parameters (its cell tagged ``parameters``), typed as scenario runs
    type them: try the notebook with other values before it is scheduled. Apply sets them here."""
    from pathlib import Path

    from himalia.kernel.widgets import ParametersForm, widgets_available
    from himalia.wire.parameters import check_value, inspect_parameters

    if not widgets_available():
        raise HimaliaClientError("The parameters form needs ipywidgets in this kernel's environment.")
    path = Path(notebook) if notebook else _this_notebook()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise HimaliaClientError(f"Cannot read the notebook {str(path)!r}: pass notebook='its path'.") from None
    parameters = inspect_parameters(text)
    if not parameters:
        raise HimaliaClientError(f"{path.name} has no parameters cell: tag one cell 'parameters'.")
    from IPython import get_ipython

    shell = get_ipython()
    return ParametersForm(parameters, shell.user_ns if shell is not None else {}, check_value)


def _this_notebook() -> Any:
    """The notebook of this kernel: jupyter_server names its session's path in ``JPY_SESSION_NAME``."""
    from pathlib import Path

    session = os.environ.get("JPY_SESSION_NAME")
    if not session:
        raise HimaliaClientError("This kernel does not know its notebook: pass notebook='its path'.")
    for candidate in (Path(session), Path.cwd() / Path(session).name):
        if candidate.is_file():
            return candidate
    raise HimaliaClientError(f"Cannot find the notebook {session!r} from {Path.cwd()}: pass notebook='its path'.")


def variables(project: str | None = None) -> dict[str, Any]:
    """The resolved variables: instance < project (< scenario < run, in scenario runs)."""
    api = client()
    answer = api.request("GET", _path("projects", api.project(project), "variables"), params={"resolved": "true"})
    resolved: dict[str, Any] = answer["variables"]
    return resolved


def set_project_variables(
    values: Mapping[str, Any] | None = None, /, project: str | None = None, **more: Any
) -> dict[str, Any]:
    """Update some project variables, keeping the others."""
    api = client()
    path = _path("projects", api.project(project), "variables")
    current = api.request("GET", path)["variables"]
    updated = {**current, **(values or {}), **more}
    stored: dict[str, Any] = api.request("PUT", path, json={"variables": updated})["variables"]
    return stored


def record_metric(name: str, value: Any, dataset: str | None = None, project: str | None = None) -> dict[str, Any]:
    """Keep a value in the project's metric history (and the run's, in a scenario run)."""
    api = client()
    body = {"name": name, "value": value, "dataset": dataset, "run_id": api.platform.run_id}
    recorded: dict[str, Any] = api.request("POST", _path("projects", api.project(project), "metrics"), json=body)
    return recorded
