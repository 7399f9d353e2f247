"""``himalia scenario``: validate, save, run and follow scenarios."""

import contextlib
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from himalia.cli.context import Context, pairs, pass_ctx
from himalia.cli.output import cell, emit, fail, print_table, run, stderr

if TYPE_CHECKING:
    from himalia.cli.serving import ServingPlane


@click.group()
def scenario() -> None:
    """Scenarios: steps, triggers and reporters."""


@scenario.command("validate")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def scenario_validate(path: str) -> None:
    """Check a scenario file; exit 1 naming the line and field of the first mistake."""
    from himalia.wire.definitions import load_scenario

    definition = run(lambda: load_scenario(Path(path).read_text(), path))
    summary = f"{path}: scenario '{definition.id}' is valid: {len(definition.steps)} steps"
    summary += f", {len(definition.triggers)} triggers, {len(definition.reporters)} reporters"
    click.echo(summary)
    for trigger in definition.triggers:
        if trigger.type == "time":
            fire = trigger.next_fire(datetime.now(UTC))
            click.echo(f"  next time trigger: {fire.isoformat()} ({trigger.expression()} in {trigger.timezone})")


@scenario.command("schema")
def scenario_schema() -> None:
    """Print the JSON schema of scenario files."""
    from himalia.wire.definitions import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


def _read_notebooks(definition: Any, folder: Path) -> dict[str, Any]:
    """The notebooks a scenario runs, read where the CLI stands, so the server snapshots these."""
    found = {}
    for step in definition.steps:
        if step.type == "notebook" and (folder / step.notebook).is_file():
            found[step.notebook] = json.loads((folder / step.notebook).read_text(encoding="utf-8"))
    return found


@scenario.command("apply")
@click.argument("project_key")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--notebooks",
    "folder",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder the notebook paths of the steps are relative to.",
)
@pass_ctx
def scenario_apply(ctx: Context, project_key: str, path: str, folder: str) -> None:
    """Create or update a scenario from its YAML file, snapshotting its notebooks and the project
    files beside the first one (that folder's tree, or the YAML's `files:` globs)."""
    from himalia.wire.definitions import load_scenario
    from himalia.wire.scenarios import SaveScenario

    text = Path(path).read_text()
    definition = run(lambda: load_scenario(text, path))
    spec = SaveScenario(yaml=text, notebooks=_read_notebooks(definition, Path(folder)))
    plane = ctx.plane()
    saved = run(
        lambda: plane.scenarios.save_scenario(
            ctx.caller(), project_key, spec, scenario_id=definition.id, files_root=Path(folder)
        )
    )
    click.echo(f"saved scenario {project_key}/{saved.id} revision {saved.revision} (runs as {saved.run_as})")
    for notebook, snapshot in saved.notebooks.items():
        click.echo(f"  {notebook}: snapshot {snapshot[:12]}")
    if saved.files is not None:
        size = saved.files.bytes
        click.echo(f"  project files: {saved.files.files} files, {size:,} bytes, tree {saved.files.digest[:12]}")
    if saved.next_fire_at:
        click.echo(f"  next fire: {saved.next_fire_at.isoformat()}")


@scenario.command("list")
@click.argument("project_key")
@pass_ctx
def scenario_list(ctx: Context, project_key: str) -> None:
    """A project's scenarios, their last outcome and next fire time."""
    page = run(lambda: ctx.plane().scenarios.list_scenarios(ctx.caller(), project_key, 500, 0))
    rows = [
        {
            "id": s.id,
            "name": s.name,
            "active": s.active,
            "run_as": s.run_as,
            "last_run": f"#{s.last_run.id} {s.last_run.state}" if s.last_run else "",
            "next_fire_at": s.next_fire_at.isoformat(timespec="minutes") if s.next_fire_at else "",
        }
        for s in page.items
    ]
    emit(ctx, page if ctx.json else rows, ["id", "name", "active", "run_as", "last_run", "next_fire_at"])


@scenario.command("export")
@click.argument("project_key")
@click.argument("scenario_id")
@pass_ctx
def scenario_export(ctx: Context, project_key: str, scenario_id: str) -> None:
    """Print a scenario as YAML."""
    click.echo(run(lambda: ctx.plane().scenarios.export_yaml(ctx.caller(), project_key, scenario_id)), nl=False)


@scenario.command("delete")
@click.argument("project_key")
@click.argument("scenario_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def scenario_delete(ctx: Context, project_key: str, scenario_id: str, yes: bool) -> None:
    """Delete a scenario and its run history; refused while one of its runs is queued or running."""
    plane, caller = ctx.plane(), ctx.caller()
    described = run(lambda: plane.scenarios.get_scenario(caller, project_key, scenario_id))
    if not yes:
        runs = run(lambda: plane.runs.list_runs(caller, project_key, scenario_id, 1, 0)).total
        click.confirm(
            f"Delete scenario {project_key}/{scenario_id} ({described.name}) and the history of its {runs} run(s)?",
            abort=True,
        )
    deleted = run(lambda: plane.scenarios.delete_scenario(caller, project_key, scenario_id))
    click.echo(f"deleted scenario {project_key}/{scenario_id} and {deleted} run(s)")


#: The run states of a run still to end (``himalia.wire.scenarios.ACTIVE_STATES``, as the wire spells them).
ACTIVE = frozenset({"queued", "running"})
#: The step states of a step still to end.
UNFINISHED_STEP = frozenset({"pending", "running"})


def _typed(declared: dict[str, Any], given: dict[str, str]) -> dict[str, Any]:
    """``-p name=value`` pairs read as the types the notebooks declare (``declared``: the scenario's
    parameters as the API describes them)."""
    from himalia.wire.parameters import coerce_text

    types = {p["name"]: p for step in declared["steps"] for p in step["parameters"]}
    return {name: coerce_text(types.get(name), text, f"parameters.{name}") for name, text in given.items()}


@scenario.command("run")
@click.argument("project_key")
@click.argument("scenario_id")
@click.option("-p", "--parameter", "parameters", multiple=True, metavar="NAME=VALUE", help="A notebook parameter.")
@click.option("-v", "--variable", "variables", multiple=True, metavar="NAME=VALUE", help="Override a variable.")
@click.option("--wait", is_flag=True, help="Follow the run; exit 1 unless it succeeds or warns.")
@pass_ctx
def scenario_run(
    ctx: Context,
    project_key: str,
    scenario_id: str,
    parameters: tuple[str, ...],
    variables: tuple[str, ...],
    wait: bool,
) -> None:
    """Start a run, and with --wait follow its steps until it ends.

    A control plane serving this home (`himalia serve`, a lab with the extension) is handed the
    run through the home's socket and carries it out. Without one, the run is queued in the store
    for a control plane to pick up, or with --wait carried out by this command itself.
    """
    import yaml

    from himalia.cli.serving import MISDIRECTED, Refused

    given = pairs(parameters, "--parameter")
    values = {k: yaml.safe_load(v) for k, v in pairs(variables, "--variable").items()}
    final, served = None, False
    if (serving := ctx.serving_plane()) is not None:
        with contextlib.closing(serving):
            try:
                final, served = _run_served(serving, project_key, scenario_id, given, values, wait), True
            except Refused as refusal:
                if refusal.status != MISDIRECTED:
                    fail(refusal.message)
                # That socket's control plane serves another store: the run is carried out here.
    if not served:
        final = _run_here(ctx, project_key, scenario_id, given, values, wait)
    if final is None:
        return
    if ctx.json:
        emit(ctx, final)
    else:
        _print_steps(final)
    sys.exit(0 if final["state"] in ("succeeded", "warning") else 1)


def _queued(started: dict[str, Any], key: str, scenario_id: str) -> None:
    click.echo(f"queued run #{started['id']} of {key}/{scenario_id} ({started['state']})")


def _run_served(
    serving: "ServingPlane", key: str, scenario_id: str, given: dict[str, str], values: dict[str, Any], wait: bool
) -> dict[str, Any] | None:
    """Request the run from the serving control plane, and with ``wait`` follow it there: each
    GET waits on the server until the run changed (``If-None-Match``), nothing is polled."""
    from himalia.cli.serving import FOLLOW_WAIT_SECONDS, scenario_path

    base = scenario_path(key, scenario_id)
    typed = run(lambda: _typed(serving.request("GET", f"{base}/parameters"), given))
    started = serving.request("POST", f"{base}/run", {"parameters": typed, "variables": values})
    if not wait:
        _queued(started, key, scenario_id)
        return None

    def updates() -> Iterator[dict[str, Any]]:
        path = f"{base}/runs/{started['id']}"
        current = serving.request("GET", path)
        yield current
        while current["state"] in ACTIVE:
            changed = serving.request(
                "GET", f"{path}?wait={FOLLOW_WAIT_SECONDS}", headers={"If-None-Match": serving.etag or ""}
            )
            if changed is not None:  # None: 304, nothing changed within the wait
                current = changed
                yield current

    return _follow(started["id"], updates())


def _run_here(
    ctx: Context, key: str, scenario_id: str, given: dict[str, str], values: dict[str, Any], wait: bool
) -> dict[str, Any] | None:
    """Queue the run in the store; with ``wait``, carry it out in this process and follow it.

    Lean on purpose: the engine (one warm worker, started first so that its imports overlap what
    follows) runs this run only, the API its kernels reach is served from a thread, and the run
    is followed on this process's events, never polled."""
    import threading

    from himalia.hosts.background import BackgroundAPI
    from himalia.store.events import RunFinished, RunProgressed
    from himalia.wire.scenarios import RunRequest

    plane, caller = ctx.plane(), ctx.caller()
    declared = run(lambda: plane.scenarios.parameters(caller, key, scenario_id).model_dump(mode="json"))
    request = RunRequest(parameters=run(lambda: _typed(declared, given)), variables=values)
    if not wait:
        queued = run(lambda: plane.runs.request_run(caller, key, scenario_id, request))
        _queued(queued.model_dump(mode="json"), key, scenario_id)
        return None
    api = BackgroundAPI(plane)
    plane.api_url = api.start()
    plane.config.LocalExecutor.refill = False  # this process runs one run: nothing to start ahead for
    engine = plane.start_engine(schedule=False, only=set())
    changed = threading.Event()
    unsubscribe = [
        plane.events.subscribe(RunProgressed, lambda _: changed.set()),
        plane.events.subscribe(RunFinished, lambda _: changed.set()),
    ]
    try:
        started = run(lambda: plane.runs.request_run(caller, key, scenario_id, request))
        assert engine.only is not None
        engine.only.add(started.id)
        engine.wake()

        def updates() -> Iterator[dict[str, Any]]:
            while True:  # every event here is of this run: the engine runs no other
                changed.clear()
                current = plane.runs.get_run(caller, key, scenario_id, started.id).model_dump(mode="json")
                yield current
                if current["state"] not in ACTIVE:
                    return
                changed.wait()

        return _follow(started.id, updates())
    finally:
        for stop in unsubscribe:
            stop()
        api.stop()


def _follow(run_id: int, updates: Iterator[dict[str, Any]]) -> dict[str, Any]:
    """Show the run's steps as a progress bar as ``updates`` come; the last one (the run ended)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr(), transient=False) as progress:
        task = None
        for current in updates:
            steps = current["steps"]
            if task is None:
                task = progress.add_task(f"run #{run_id}: {current['state']}", total=len(steps))
            done = sum(s["state"] not in UNFINISHED_STEP for s in steps)
            running = [s["name"] for s in steps if s["state"] == "running"]
            label = f"run #{run_id}: " + (running[0] if running else current["state"])
            progress.update(task, completed=done, description=label)
    return current


def _print_steps(final: dict[str, Any]) -> None:
    steps = final["steps"]
    print_table(
        ["step", "type", "state", "message"], [[s["name"], s["type"], s["state"], s["message"][:200]] for s in steps]
    )
    click.echo(f"run #{final['id']}: {final['state']}" + (f" — {final['message']}" if final["message"] else ""))


@scenario.command("runs")
@click.argument("project_key")
@click.argument("scenario_id")
@click.option("--limit", default=20, show_default=True)
@pass_ctx
def scenario_runs(ctx: Context, project_key: str, scenario_id: str, limit: int) -> None:
    """A scenario's latest runs."""
    page = run(lambda: ctx.plane().runs.list_runs(ctx.caller(), project_key, scenario_id, limit, 0))
    rows = [
        {
            "id": r.id,
            "state": r.state,
            "trigger": r.trigger,
            "requested_by": r.requested_by,
            "started_at": r.started_at.isoformat(timespec="seconds") if r.started_at else "",
            "ended_at": r.ended_at.isoformat(timespec="seconds") if r.ended_at else "",
            "message": r.message,
        }
        for r in page.items
    ]
    emit(
        ctx, page if ctx.json else rows, ["id", "state", "trigger", "requested_by", "started_at", "ended_at", "message"]
    )


@scenario.command("compare")
@click.argument("project_key")
@click.argument("scenario_id")
@click.argument("first", type=int)
@click.argument("second", type=int)
@pass_ctx
def scenario_compare(ctx: Context, project_key: str, scenario_id: str, first: int, second: int) -> None:
    """Two runs side by side: what differs in what they were given, ran and recorded."""
    compared = run(lambda: ctx.plane().runs.compare_runs(ctx.caller(), project_key, scenario_id, first, second))
    if ctx.json:
        emit(ctx, compared)
        return
    a, b = compared.a, compared.b

    def seconds(value: float | None) -> str:
        return "" if value is None else f"{value:.1f} s"

    print_table(
        ["", f"run #{a.id}", f"run #{b.id}"],
        [
            ["state", a.state, b.state],
            ["trigger", a.trigger, b.trigger],
            ["run as", a.run_as, b.run_as],
            ["duration", seconds(a.seconds), seconds(b.seconds)],
        ],
    )
    differing = [
        (kind, value)
        for kind, values in (("parameter", compared.parameters), ("variable", compared.variables))
        for value in values
        if not value.same
    ]
    differing += [("metric", value) for value in compared.metrics if not value.same]
    differing += [("check", value) for value in compared.checks if not value.same]
    if differing:
        click.echo()
        print_table(
            ["what", "name", f"run #{a.id}", f"run #{b.id}"],
            [
                [kind, f"{value.dataset}/{value.name}" if value.dataset else value.name, cell(value.a), cell(value.b)]
                for kind, value in differing
            ],
        )
    click.echo()
    for notebook in compared.notebooks:
        if notebook.same:
            click.echo(f"{notebook.path}: the same snapshot")
            continue
        click.echo(f"{notebook.path}: {len(notebook.cells)} cell(s) differ")
        for compared_cell in notebook.cells:
            click.echo(compared_cell.diff, nl=False)
    files = compared.files
    if files.added or files.removed or files.changed:
        click.echo(
            f"project files: {len(files.added)} added, {len(files.removed)} removed, {len(files.changed)} changed, "
            f"{files.unchanged} the same"
        )
        for mark, paths in (("+", files.added), ("-", files.removed), ("~", files.changed)):
            for path in paths:
                click.echo(f"  {mark} {path}")
    else:
        click.echo(f"project files: the same ({files.unchanged})")
    click.echo()
    print_table(
        ["step", f"run #{a.id}", f"run #{b.id}"],
        [
            [
                step.name,
                f"{step.a or ''} {seconds(step.seconds_a)}".strip(),
                f"{step.b or ''} {seconds(step.seconds_b)}".strip(),
            ]
            for step in compared.steps
        ],
    )


@scenario.command("log")
@click.argument("project_key")
@click.argument("scenario_id")
@click.argument("run_id", type=int)
@pass_ctx
def scenario_log(ctx: Context, project_key: str, scenario_id: str, run_id: int) -> None:
    """Print a run's log."""
    text, _ = run(lambda: ctx.plane().runs.read_log(ctx.caller(), project_key, scenario_id, run_id))
    click.echo(text, nl=False)


@scenario.command("abort")
@click.argument("project_key")
@click.argument("scenario_id")
@click.argument("run_id", type=int)
@pass_ctx
def scenario_abort(ctx: Context, project_key: str, scenario_id: str, run_id: int) -> None:
    """Abort a queued or running run (the process running it kills its kernels)."""
    from himalia.wire.scenarios import RunState

    aborted = run(lambda: ctx.plane().runs.abort(ctx.caller(), project_key, scenario_id, run_id))
    click.echo(f"run #{run_id}: {'aborted' if aborted.state == RunState.ABORTED else 'abort requested'}")
