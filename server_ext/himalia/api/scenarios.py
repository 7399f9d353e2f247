"""``projects/{key}/scenarios``: definitions, runs, their logs, reports and executed notebooks."""

import asyncio
import contextlib
import hashlib
from typing import Any

from pydantic import Field, TypeAdapter

from himalia.api.base import APIHandler, PageQuery, Query, operation
from himalia.core.documents import line_of
from himalia.core.errors import InvalidInput, NotFound
from himalia.store.events import RunFinished, RunProgressed
from himalia.wire.common import Page
from himalia.wire.scenarios import (
    ACTIVE_STATES,
    ArtifactKind,
    DescribeRun,
    DescribeScenario,
    NotebookDiff,
    RerunRequest,
    RunComparison,
    RunRequest,
    SaveScenario,
    ScenarioParameters,
    SetActive,
)

#: Run ids and log cursors are 32-bit integers in the store.
MAX_ID = 2**31 - 1
#: The longest a GET of a run waits for it to change.
MAX_WAIT_SECONDS = 60.0
#: How often a waiting GET of a run looks at the store although no event came (the run may be
#: executed by another process sharing the database, whose events this one does not see).
RECHECK_SECONDS = 1.0
RUN_JSON: TypeAdapter[DescribeRun] = TypeAdapter(DescribeRun)


def run_number(run: str) -> int:
    if not (run.isascii() and run.isdigit()) or len(run) > 10 or int(run) > MAX_ID:
        raise NotFound(f"There is no run '{run}'.")
    return int(run)


def with_line(error: InvalidInput, spec: SaveScenario) -> InvalidInput:
    """A refusal of a YAML text's field found after parsing (a dataset that does not exist, a
    parameter the notebook does not declare) with its line, as parsing errors have it
    (``yaml:LINE: field: message``), for the lab's editor to point at."""
    if spec.yaml is None or not error.field or not error.message.startswith(f"{error.field}: "):
        return error
    line = line_of(spec.yaml, error.field)
    return error if line is None else InvalidInput(f"yaml:{line}: {error.message}", field=error.field)


class _SaveHandler(APIHandler):
    async def save(self, key: str, spec: SaveScenario, **options: Any) -> DescribeScenario:
        try:
            return await self.call(self.control_plane.scenarios.save_scenario, self.caller, key, spec, **options)
        except InvalidInput as error:
            raise (await self.call(with_line, error, spec)) from None  # parsing the YAML again: off the loop


class ScenariosHandler(_SaveHandler):
    route = "/projects/{key}/scenarios"

    @operation(
        "The project's scenarios with their last run and next fire time (read_content or run_scenarios).",
        query=PageQuery,
        response=Page[DescribeScenario],
    )
    async def get(self, key: str, query: PageQuery) -> Page[DescribeScenario]:
        return await self.call(self.control_plane.scenarios.list_scenarios, self.caller, key, query.limit, query.offset)

    @operation(
        "Create a scenario from JSON or YAML; its notebooks are snapshotted (write_content; "
        "write_isolated_code for notebooks, write_unsafe_code for set_variables code).",
        body=SaveScenario,
        response=DescribeScenario,
        status=201,
    )
    async def post(self, key: str, spec: SaveScenario) -> DescribeScenario:
        return await self.save(key, spec, create_only=True)


class ScenarioHandler(_SaveHandler):
    route = "/projects/{key}/scenarios/{scenario}"

    @operation("Describe a scenario.", response=DescribeScenario)
    async def get(self, key: str, scenario: str) -> DescribeScenario:
        return await self.call(self.control_plane.scenarios.get_scenario, self.caller, key, scenario)

    @operation(
        "Create or replace a scenario; its notebooks are snapshotted again (write_content).",
        body=SaveScenario,
        response=DescribeScenario,
    )
    async def put(self, key: str, scenario: str, spec: SaveScenario) -> DescribeScenario:
        return await self.save(key, spec, scenario_id=scenario)

    @operation(
        "Turn a scenario's automatic triggers on or off (write_content).", body=SetActive, response=DescribeScenario
    )
    async def patch(self, key: str, scenario: str, spec: SetActive) -> DescribeScenario:
        return await self.call(self.control_plane.scenarios.set_active, self.caller, key, scenario, spec.active)

    @operation(
        "Delete a scenario and its run history (write_content); 409 while one of its runs is queued or running, "
        "or while another scenario runs it or fires after it."
    )
    async def delete(self, key: str, scenario: str) -> None:
        await self.call(self.control_plane.scenarios.delete_scenario, self.caller, key, scenario)


class ScenarioExportHandler(APIHandler):
    route = "/projects/{key}/scenarios/{scenario}/export"

    @operation("The scenario as YAML, the exchange format.", media_types=("application/yaml",))
    async def get(self, key: str, scenario: str) -> None:
        text = await self.call(self.control_plane.scenarios.export_yaml, self.caller, key, scenario)
        self.set_header("Content-Type", "application/yaml; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{scenario}.yaml"')
        self.finish(text)


class ScenarioParametersHandler(APIHandler):
    route = "/projects/{key}/scenarios/{scenario}/parameters"

    @operation("The notebook steps' typed parameters and the scenario's variables.", response=ScenarioParameters)
    async def get(self, key: str, scenario: str) -> ScenarioParameters:
        return await self.call(self.control_plane.scenarios.parameters, self.caller, key, scenario)


class RunScenarioHandler(APIHandler):
    route = "/projects/{key}/scenarios/{scenario}/run"

    @operation(
        "Run the scenario now with typed parameters (run_scenarios); 409 if its policy skips, 429 if the queue "
        "is full.",
        body=RunRequest,
        response=DescribeRun,
        status=201,
    )
    async def post(self, key: str, scenario: str, spec: RunRequest) -> DescribeRun:
        return await self.call(self.control_plane.runs.request_run, self.caller, key, scenario, spec)


class RunsHandler(APIHandler):
    route = "/projects/{key}/scenarios/{scenario}/runs"

    @operation("The scenario's runs, newest first.", query=PageQuery, response=Page[DescribeRun])
    async def get(self, key: str, scenario: str, query: PageQuery) -> Page[DescribeRun]:
        return await self.call(self.control_plane.runs.list_runs, self.caller, key, scenario, query.limit, query.offset)


class RunQuery(Query):
    wait: float = Field(
        0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="With If-None-Match: seconds to wait for the run to differ from that ETag (a step started "
        "or ended, the run finished); 304 if it did not. A finished run answers at once.",
    )


def run_etag(run: DescribeRun) -> str:
    """The ETag of a run's description: its JSON's digest, so that any change makes another."""
    return '"' + hashlib.sha1(RUN_JSON.dump_json(run)).hexdigest() + '"'


class RunHandler(APIHandler):
    route = "/projects/{key}/scenarios/{scenario}/runs/{run}"

    @operation(
        "A run with its steps, outputs and artifacts; with `wait` and If-None-Match, once it changed (a long "
        "poll: what a client following a run sends instead of polling).",
        query=RunQuery,
        response=DescribeRun,
    )
    async def get(self, key: str, scenario: str, run: str, query: RunQuery) -> DescribeRun:
        number, runs, seen = run_number(run), self.control_plane.runs, self.request.headers.get("If-None-Match")
        if not query.wait or seen is None:
            described = await self.call(runs.get_run, self.caller, key, scenario, number)
        else:
            described = await self._changed(key, scenario, number, seen, query.wait)
        etag = run_etag(described)
        self.set_header("Etag", etag)
        if seen is not None and etag in seen:
            self.set_status(304)
            self.finish()
        return described

    async def _changed(self, key: str, scenario: str, number: int, seen: str, wait: float) -> DescribeRun:
        """The run once it differs from the ETag ``seen``, is finished, or ``wait`` seconds passed.

        It wakes on this process's events of the run and looks again every ``RECHECK_SECONDS``, for
        runs that another process executes. Subscribed before the first look: nothing is missed.
        """
        loop, changed = asyncio.get_running_loop(), asyncio.Event()

        def notify(event: RunProgressed | RunFinished) -> None:
            if event.run_id == number:
                loop.call_soon_threadsafe(changed.set)

        events = self.control_plane.events
        unsubscribe = [events.subscribe(RunProgressed, notify), events.subscribe(RunFinished, notify)]
        deadline = loop.time() + wait
        try:
            described = await self.call(self.control_plane.runs.get_run, self.caller, key, scenario, number)
            while described.state in ACTIVE_STATES and run_etag(described) in seen:
                left = deadline - loop.time()
                if left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(left, RECHECK_SECONDS))
                changed.clear()
                described = await self.call(self.control_plane.runs.get_run, self.caller, key, scenario, number)
        finally:
            for stop in unsubscribe:
                stop()
        return described


class AbortRunHandler(APIHandler):
    route = "/projects/{key}/scenarios/{scenario}/runs/{run}/abort"

    @operation("Abort a queued or running run; its kernels are killed (run_scenarios).", response=DescribeRun)
    async def post(self, key: str, scenario: str, run: str) -> DescribeRun:
        return await self.call(self.control_plane.runs.abort, self.caller, key, scenario, run_number(run))


class CompareRunsHandler(APIHandler):
    route = "/projects/{key}/scenarios/{scenario}/runs/{run}/compare/{other}"

    @operation(
        "Two runs side by side: parameters, variables, notebook snapshots (cell by cell where they "
        "differ), project files, steps and durations, and the metrics and check outcomes each recorded.",
        response=RunComparison,
    )
    async def get(self, key: str, scenario: str, run: str, other: str) -> RunComparison:
        runs = self.control_plane.runs
        return await self.call(runs.compare_runs, self.caller, key, scenario, run_number(run), run_number(other))


class NotebookPathQuery(Query):
    path: str = Field(min_length=1, max_length=1000, description="The notebook's path, as the runs list it.")


class CompareNotebookHandler(APIHandler):
    route = "/projects/{key}/scenarios/{scenario}/runs/{run}/compare/{other}/notebook"

    @operation(
        "One notebook of two runs in nbdime's terms: run a's snapshot and nbdime's diff to run b's.",
        query=NotebookPathQuery,
        response=NotebookDiff,
    )
    async def get(self, key: str, scenario: str, run: str, other: str, query: NotebookPathQuery) -> NotebookDiff:
        runs = self.control_plane.runs
        first, second = run_number(run), run_number(other)
        return await self.call(runs.compare_notebook, self.caller, key, scenario, first, second, query.path)


class RerunHandler(APIHandler):
    route = "/projects/{key}/scenarios/{scenario}/runs/{run}/rerun"

    @operation(
        "Run the same snapshots and parameters again, optionally from the failed step (run_scenarios).",
        body=RerunRequest,
        response=DescribeRun,
        status=201,
    )
    async def post(self, key: str, scenario: str, run: str, spec: RerunRequest) -> DescribeRun:
        return await self.call(self.control_plane.runs.rerun, self.caller, key, scenario, run_number(run), spec)


class LogQuery(Query):
    after: int = Field(0, ge=0, le=MAX_ID, description="The cursor of the last read (header X-Himalia-Log-Cursor).")


class RunLogHandler(APIHandler):
    route = "/projects/{key}/scenarios/{scenario}/runs/{run}/log"

    @operation(
        "The run's log as text, from a cursor on, for following it live.", query=LogQuery, media_types=("text/plain",)
    )
    async def get(self, key: str, scenario: str, run: str, query: LogQuery) -> None:
        text, cursor = await self.call(
            self.control_plane.runs.read_log, self.caller, key, scenario, run_number(run), query.after
        )
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("X-Himalia-Log-Cursor", str(cursor))
        self.finish(text)


class ArtifactQuery(Query):
    step: str | None = Field(None, max_length=100, description="A notebook step's name; defaults to the last one.")


class _ArtifactHandler(APIHandler):
    kind: ArtifactKind

    async def send(self, key: str, scenario: str, run: str, step: str | None) -> None:
        name, media_type, content = await self.call(
            self.control_plane.runs.read_artifact, self.caller, key, scenario, run_number(run), self.kind, step
        )
        self.set_header("Content-Type", media_type + ("; charset=utf-8" if self.kind == ArtifactKind.HTML else ""))
        # Notebook outputs are anyone's HTML and scripts: never let them act as this origin.
        self.set_header("Content-Security-Policy", "sandbox allow-scripts allow-popups")
        self.set_header("X-Content-Type-Options", "nosniff")
        disposition = "inline" if self.kind == ArtifactKind.HTML else "attachment"
        self.set_header("Content-Disposition", f'{disposition}; filename="run-{run}-{name}"')
        self.finish(content)


class RunReportHandler(_ArtifactHandler):
    route = "/projects/{key}/scenarios/{scenario}/runs/{run}/report"
    kind = ArtifactKind.HTML

    @operation("A notebook step's HTML report (nbconvert).", query=ArtifactQuery, media_types=("text/html",))
    async def get(self, key: str, scenario: str, run: str, query: ArtifactQuery) -> None:
        await self.send(key, scenario, run, query.step)


class RunNotebookHandler(_ArtifactHandler):
    route = "/projects/{key}/scenarios/{scenario}/runs/{run}/notebook"
    kind = ArtifactKind.IPYNB

    @operation("A notebook step's executed notebook.", query=ArtifactQuery, media_types=("application/x-ipynb+json",))
    async def get(self, key: str, scenario: str, run: str, query: ArtifactQuery) -> None:
        await self.send(key, scenario, run, query.step)


handlers = [
    ScenariosHandler,
    ScenarioHandler,
    ScenarioExportHandler,
    ScenarioParametersHandler,
    RunScenarioHandler,
    RunsHandler,
    RunHandler,
    AbortRunHandler,
    CompareRunsHandler,
    CompareNotebookHandler,
    RerunHandler,
    RunLogHandler,
    RunReportHandler,
    RunNotebookHandler,
]
