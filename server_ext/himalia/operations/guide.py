"""A project's operations guide, generated from what the platform knows of it.

The guide follows the shape of the runbooks operators keep for scheduled pipelines (a quick
reference, the schedule, the morning check, re-runs, what each check's outcomes mean, access):
written from the stored scenarios, datasets, checks, connections and grants, it is right on the
day it is generated, which a hand-written runbook rarely is.

It holds nothing secret: connections appear by name and type only (never their parameters,
whose URLs may carry passwords), webhooks by their host only (Slack's and Teams' addresses are
their tokens), and whoever generates it must read the project (``read_content``) anyway.
"""

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Protocol
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from markdown_it import MarkdownIt

from himalia.core.errors import Forbidden, ask_for
from himalia.core.permissions import ProjectPermission
from himalia.data.checks import CheckService
from himalia.data.connections import ConnectionService
from himalia.data.datasets import DatasetService
from himalia.data.rules import format_value
from himalia.identity.caller import Caller
from himalia.identity.projects import ProjectService
from himalia.scenarios.runs import RunService
from himalia.scenarios.service import ScenarioService
from himalia.wire.data import DescribeCheck, DescribeConnection, DescribeDataset, FreshnessSpec
from himalia.wire.definitions import (
    WEEKDAYS,
    AfterScenarioTrigger,
    DatasetChangeTrigger,
    EmailReporter,
    SqlConditionTrigger,
    SqlStep,
    TimeTrigger,
    WebhookReporter,
)
from himalia.wire.identity import DescribeGrant, DescribeProject
from himalia.wire.scenarios import DescribeRun, DescribeScenario

#: Everything a project holds, for a guide: far above any real project's count of each.
LIMIT = 500
#: The recent runs a scenario's typical duration is the median of.
RECENT_RUNS = 20


class GuideSources(Protocol):
    """What the guide reads: the control plane's services and its UI address (a ``ControlPlane``)."""

    projects: ProjectService
    scenarios: ScenarioService
    runs: RunService
    datasets: DatasetService
    checks: CheckService
    connections: ConnectionService
    public_url: str

    def run_link(self, project_key: str, scenario_slug: str, run_id: int) -> str | None: ...


@dataclass(frozen=True)
class ProjectFacts:
    """What the platform knows of one project, as its caller may see it."""

    project: DescribeProject
    grants: list[DescribeGrant]
    scenarios: list[DescribeScenario]
    datasets: list[DescribeDataset]
    checks: dict[str, list[DescribeCheck]]
    connections: list[DescribeConnection]
    used_connections: list[str]
    #: Scenario id -> the median duration of its recent successful runs, in seconds.
    typical_seconds: dict[str, float]
    run_link: Callable[[str, int], str | None]
    ui_url: str | None


def gather(sources: GuideSources, caller: Caller, key: str) -> ProjectFacts:
    """Read the project; a caller who cannot read its content is refused before anything is read."""
    project = sources.projects.get_project(caller, key)
    if ProjectPermission.READ_CONTENT not in project.my_permissions:
        admins = [g.principal for g in sources.projects.list_grants(caller, key) if _is_user_admin(g)]
        raise Forbidden(
            f"{caller.login} does not hold 'read_content' on {key}, which its operations guide needs: "
            f"{ask_for('it', admins, f'{key} administrators')}."
        )
    scenarios = sources.scenarios.list_scenarios(caller, key, LIMIT, 0).items
    datasets = sources.datasets.list_datasets(caller, key, LIMIT, 0).items
    used = {d.connection for d in datasets}
    for scenario in scenarios:
        definition = scenario.definition
        used |= {s.connection for s in definition.steps if isinstance(s, SqlStep)}
        used |= {t.connection for t in definition.triggers if isinstance(t, SqlConditionTrigger)}
    public_url = sources.public_url.rstrip("/")
    return ProjectFacts(
        project=project,
        grants=sources.projects.list_grants(caller, key),
        scenarios=scenarios,
        datasets=datasets,
        checks={d.name: sources.checks.list_checks(caller, key, d.name) for d in datasets},
        connections=[c for c in sources.connections.list_connections(caller, LIMIT, 0).items if c.name in used],
        used_connections=sorted(used),
        typical_seconds={
            s.id: seconds
            for s in scenarios
            if (seconds := _typical_seconds(sources.runs.list_runs(caller, key, s.id, RECENT_RUNS, 0).items))
        },
        run_link=lambda scenario, run: sources.run_link(key, scenario, run),
        ui_url=f"{public_url}/lab" if public_url else None,
    )


def _typical_seconds(runs: list[DescribeRun]) -> float | None:
    """The median duration of the runs that succeeded or warned, if any did."""
    durations = [
        (run.ended_at - run.started_at).total_seconds()
        for run in runs
        if run.state in ("succeeded", "warning") and run.started_at and run.ended_at
    ]
    return statistics.median(durations) if durations else None


def _spoken_seconds(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _is_user_admin(grant: DescribeGrant) -> bool:
    return grant.principal_type == "user" and ProjectPermission.ADMIN in grant.permissions


# -- words --------------------------------------------------------------------------------------


def _cell(text: object) -> str:
    """Text for one Markdown table cell: pipes escaped, on one line."""
    return " ".join(str(text).split()).replace("|", "\\|") or "-"


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def cron_in_words(cron: str) -> str:
    """The common cron forms in words (``0 2 * * 1-5``: weekdays at 02:00); others as the expression."""
    fields = cron.split()
    if len(fields) != 5:
        return f"on the schedule `{cron}`"
    minute, hour, day, month, weekday = fields
    if minute.isdigit() and hour.isdigit() and day == "*" and month == "*":
        at = f"{int(hour):02d}:{int(minute):02d}"
        if weekday == "*":
            return f"every day at {at}"
        if weekday == "1-5":
            return f"on weekdays at {at}"
        if weekday.isdigit() and int(weekday) < 7:
            return f"every {WEEKDAYS[int(weekday)].capitalize()} at {at}"
    if minute.startswith("*/") and hour == "*" and day == month == weekday == "*":
        return f"every {minute[2:]} minutes"
    if minute.isdigit() and hour.startswith("*/") and day == month == weekday == "*":
        return f"every {hour[2:]} hours at :{int(minute):02d}"
    if minute.isdigit() and hour == "*" and day == month == weekday == "*":
        return f"every hour at :{int(minute):02d}"
    return f"on the schedule `{cron}`"


def trigger_in_words(trigger: object) -> str:
    if isinstance(trigger, TimeTrigger):
        spoken = trigger.schedule or cron_in_words(trigger.expression())
        return f"{spoken} ({trigger.timezone}; cron `{trigger.expression()}`)"
    if isinstance(trigger, DatasetChangeTrigger):
        return (
            f"when dataset {trigger.dataset} changes (checked every {trigger.interval}, "
            f"fired {trigger.grace} after the change settles)"
        )
    if isinstance(trigger, AfterScenarioTrigger):
        outcome = "succeeds" if trigger.on == "success" else "ends, whatever its outcome"
        return f"after scenario {trigger.scenario} {outcome}"
    if isinstance(trigger, SqlConditionTrigger):
        return f"when a query on connection {trigger.connection} returns a new value (checked every {trigger.interval})"
    return "by hand"


def reporter_in_words(reporter: object) -> str:
    """Who is told, without a webhook's address beyond its host (the path and query are its token)."""
    alerts = []
    if isinstance(reporter, EmailReporter | WebhookReporter):
        if reporter.on_late:
            alerts.append("late results")
        if reporter.on_missed:
            alerts.append("missed runs")
    extra = f"; also on {' and '.join(alerts)}" if alerts else ""
    if isinstance(reporter, EmailReporter):
        return f"email to {', '.join(reporter.to)} ({_when(reporter.when)}{extra})"
    if isinstance(reporter, WebhookReporter):
        host = urlsplit(reporter.url).hostname or "?"
        kept = "the full address stays in the scenario"
        return f"{reporter.format} webhook to {host} ({_when(reporter.when)}{extra}; {kept})"
    return str(reporter)


def _when(when: str) -> str:
    return {
        "always": "after every run",
        "failure": "when a run fails",
        "warning_or_failure": "when a run warns or fails",
        "success": "when a run succeeds",
        "outcome_change": "when the outcome changes",
    }.get(when, when)


def _zone_of(scenario: DescribeScenario) -> str:
    times = [t for t in scenario.definition.triggers if isinstance(t, TimeTrigger)]
    return times[0].timezone if times else "UTC"


def _in_zone(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M ") + zone


CONCURRENCY = {
    "skip": "a fire while a run is in progress is skipped",
    "queue": "a fire while a run is in progress waits for it",
    "parallel": "runs may overlap",
}
CATCH_UP = {
    "skip": "fire times missed while the platform was down are skipped (shown grey as missed)",
    "run_once": "fire times missed while the platform was down are made up by one run when it starts",
}


def check_meaning(check: DescribeCheck, freshness: FreshnessSpec | None = None) -> tuple[str, str]:
    """What an ERROR and a WARNING of this check mean, in words, with its thresholds (a data
    freshness check takes its maximum age from the dataset's ``freshness``)."""
    metric = check.metric or "the value"
    severe = "WARNING" if check.severity == "warning" else "ERROR"
    if check.type == "range":
        hard = [
            f"{word} {format_value(bound)}"
            for word, bound in (("below", check.min), ("above", check.max))
            if bound is not None
        ]
        soft = [
            f"{word} {format_value(bound)}"
            for word, bound in (("below", check.soft_min), ("above", check.soft_max))
            if bound is not None
        ]
        error = f"{metric} is {' or '.join(hard)}" if hard else "never (no hard bound)"
        warning = f"{metric} is {' or '.join(soft)} (but within the hard bounds)" if soft else "never (no soft bound)"
        return error, warning
    if check.type == "in_set":
        listed = ", ".join(format_value(v) for v in check.values or [])
        outside = f"{metric} is not one of {listed}"
        return (outside, "never") if severe == "ERROR" else ("never", outside)
    if check.type == "freshness":
        if check.metric:
            what, max_age = f"the last computation of {metric}", check.max_age
        else:
            what, max_age = "the newest data", freshness.max_age if freshness else None
        if max_age is None:
            return "always: the dataset declares no freshness", "never"
        beyond = f"{what} is older than {max_age}"
        warning = f"{what} is older than {check.warn_after}" if check.warn_after else "never"
        return (beyond, warning) if severe == "ERROR" else ("never", beyond)
    if check.type == "schema_unchanged":
        changed = "the columns differ from those recorded when the check was created"
        return (changed, "never") if severe == "ERROR" else ("never", changed)
    return (
        "the check's code says ERROR, or raises (the message is the exception's text)",
        "the check's code says WARNING",
    )


# -- the guide ----------------------------------------------------------------------------------


def render_markdown(facts: ProjectFacts, generated_at: datetime) -> str:
    key = facts.project.key
    admins = [g for g in facts.grants if ProjectPermission.ADMIN in g.permissions]
    admin_names = ", ".join(f"{g.principal}" if g.principal_type == "user" else f"group {g.principal}" for g in admins)
    lines = [
        f"# {facts.project.name} ({key}): operations guide",
        "",
        f"Generated by `himalia ops guide {key}` on {generated_at:%Y-%m-%d %H:%M} UTC from the platform's own "
        "definitions: generate it again after a change rather than editing it.",
        "",
        f"**Owner**: {facts.project.owner}  ",
        "**Project administrators** (grant access, change scenarios): "
        f"{admin_names or 'none besides the platform administrators'}  ",
        f"**Contact first**: {facts.project.owner} for the project; a platform administrator for the platform itself.",
        "",
    ]
    if facts.project.description:
        lines += [facts.project.description, ""]
    lines += _quick_reference(facts)
    lines += _schedule(facts)
    lines += _morning_check(facts)
    lines += _reruns(facts)
    lines += _data_quality(facts)
    lines += _connections(facts)
    lines += _access(facts, admin_names)
    return "\n".join(lines).rstrip() + "\n"


def _quick_reference(facts: ProjectFacts) -> list[str]:
    key = facts.project.key
    return [
        "## Quick reference",
        "",
        "```text",
        "MORNING CHECK (5 minutes)",
        f"  1. himalia ops status --project {key}     (exit 0 green, 1 needs attention, 2 platform unhealthy)",
        "  2. In JupyterLab: the Himalia sidebar > Operations: the board, late and missed runs, stale data",
        "  3. Read the overnight alerts (the reporters below)",
        "IF SOMETHING IS RED",
        f"  1. himalia scenario runs {key} SCENARIO      then  himalia scenario log {key} SCENARIO RUN",
        "  2. Fix the cause (source data late? a check's threshold? see Data quality)",
        f"  3. himalia scenario run {key} SCENARIO --wait",
        "ACCESS",
        f"  himalia project explain {key} USER PERMISSION",
        "```",
        "",
    ]


def _schedule(facts: ProjectFacts) -> list[str]:
    lines = ["## Scenarios and schedules", ""]
    if not facts.scenarios:
        return [*lines, "The project has no scenarios.", ""]
    lines += _table(
        ["Scenario", "Runs", "Time zone", "Next run", "Ready by", "Typical duration", "Run as"],
        [
            (
                f"{s.name} (`{s.id}`)" + ("" if s.active else " (inactive: its triggers do not fire)"),
                "; ".join(trigger_in_words(t) for t in s.definition.triggers) or "by hand only",
                _zone_of(s),
                _in_zone(s.next_fire_at, _zone_of(s)) if s.active else "-",
                _deadline(s),
                _spoken_seconds(facts.typical_seconds[s.id])
                if s.id in facts.typical_seconds
                else "no successful run yet",
                s.run_as,
            )
            for s in facts.scenarios
        ],
    )
    for s in facts.scenarios:
        definition = s.definition
        lines += [f"### {s.name} (`{s.id}`)", ""]
        if definition.description:
            lines += [definition.description, ""]
        lines += [
            f"- **Steps**: {'; '.join(f'{step.name} ({step.type})' for step in definition.steps)}",
            f"- **Run as**: {s.run_as} (its runs act with that person's permissions; owner {s.owner})",
            f"- **Concurrency**: {definition.concurrency}: {CONCURRENCY[definition.concurrency]}",
            f"- **Catch-up**: {definition.catch_up}: {CATCH_UP[definition.catch_up]}",
            f"- **Deadline**: {_deadline(s, long=True)}",
        ]
        if definition.timeout:
            lines.append(f"- **Timeout**: a run is stopped after {definition.timeout}")
        reporters = [reporter_in_words(r) for r in definition.reporters]
        if not reporters and definition.notify_on_failure:
            reporters = [f"none: a failed run is mailed to {s.run_as} when a mail server is configured"]
        lines.append(f"- **Reporters**: {'; '.join(reporters) or 'none'}")
        if s.last_run is not None:
            link = facts.run_link(s.id, s.last_run.id)
            shown = f" ([open]({link}))" if link else ""
            lines.append(
                f"- **Last run**: #{s.last_run.id} {s.last_run.state} at "
                f"{_in_zone(s.last_run.created_at, _zone_of(s))}{shown}"
            )
        lines.append("")
    return lines


def _deadline(scenario: DescribeScenario, long: bool = False) -> str:
    sla = scenario.definition.sla
    if sla is None:
        return "none declared" if long else "-"
    zone = sla.timezone or _zone_of(scenario)
    parts = []
    if sla.ready_by:
        parts.append(f"{sla.ready_by} {zone}" if not long else f"results ready by {sla.ready_by} ({zone})")
    if sla.max_duration:
        parts.append(
            f"at most {sla.max_duration} a run" if not long else f"a run longer than {sla.max_duration} is overrunning"
        )
    if long:
        parts.append("reporters with on_late / on_missed are told once per occurrence, while there is time to act")
    return "; ".join(parts)


def _morning_check(facts: ProjectFacts) -> list[str]:
    key = facts.project.key
    where = f" ({facts.ui_url})" if facts.ui_url else ""
    lines = [
        "## The morning check",
        "",
        f"1. Run `himalia ops status --project {key}` (or open the Operations view in JupyterLab{where}: "
        "the Himalia sidebar, then Operations). Each scenario's expected runs since yesterday show in colour:",
        "",
    ]
    lines += _table(
        ["Colour", "Meaning", "What to do"],
        [
            ("green", "succeeded", "nothing"),
            ("yellow", "warning: a check warned", "read which check (Data quality below) before the results are used"),
            ("red", "failed or aborted", "read the run's log, fix, re-run (below)"),
            (
                "grey",
                "missed: an expected run did not happen (platform down, skipped by policy, queue full)",
                "run it by hand if its results are needed",
            ),
            ("blue", "running", "wait; compare with its usual duration"),
            (
                "orange",
                "late: no successful run by the deadline, or running past its maximum duration",
                "tell the people waiting for it; investigate",
            ),
        ],
    )
    lines += [
        "2. Check the data's freshness: stale datasets show beside their scenarios on the board and in "
        "`himalia ops status` (declarations under Data quality).",
        "3. Read the overnight alerts sent by the reporters listed with each scenario.",
        "",
    ]
    return lines


def _reruns(facts: ProjectFacts) -> list[str]:
    key = facts.project.key
    lines = ["## Running and re-running", ""]
    for s in facts.scenarios:
        lines += [
            f"**{s.name}**:",
            "",
            "```bash",
            f"himalia scenario run {key} {s.id} --wait        # a new run, followed; exit 1 unless it succeeds",
            f"himalia scenario runs {key} {s.id}              # its recent runs, with their numbers",
            f"himalia scenario log {key} {s.id} RUN           # what a run printed",
            f"himalia scenario abort {key} {s.id} RUN         # stop a run",
            "# the same code again, from the first failed step, keeping the earlier steps' results:",
            'curl -X POST -H "Authorization: token $HIMALIA_TOKEN" -H "Content-Type: application/json" \\',
            f'  -d \'{{"from_failed_step": true}}\' "$HIMALIA_API_URL/projects/{key}/scenarios/{s.id}/runs/RUN/rerun"',
            "```",
            "",
        ]
        if s.last_run is not None and (link := facts.run_link(s.id, s.last_run.id)):
            lines += [f"Its last run's page (with **Re-run** and **Re-run from the failed step**): {link}", ""]
    lines += [
        "A re-run uses the notebooks and project files snapshotted for the run it repeats; "
        "`himalia scenario run` uses the scenario's current ones. Running needs `run_scenarios` on the project.",
        "",
    ]
    return lines


def _data_quality(facts: ProjectFacts) -> list[str]:
    lines = [
        "## Data quality",
        "",
        "A `run_checks` step's ERROR fails the step and stops the run (red); a WARNING lets the run go on and "
        "makes its outcome warning (yellow); EMPTY means there was no value to judge.",
        "",
    ]
    if not facts.datasets:
        return [*lines, "The project has no datasets.", ""]
    for dataset in facts.datasets:
        where = dataset.table or dataset.path or "a query"
        lines += [f"### {dataset.name}", "", f"{dataset.kind} `{where}` on connection {dataset.connection}.", ""]
        if dataset.freshness is not None:
            source = (
                f"the newest `{dataset.freshness.column}`"
                if dataset.freshness.column
                else "the files' newest modification time"
            )
            lines += [f"**Freshness**: {source} must be at most {dataset.freshness.max_age} old.", ""]
        checks = facts.checks.get(dataset.name, [])
        if not checks:
            lines += ["No checks.", ""]
            continue
        lines += _table(
            ["Check", "Type", "ERROR means", "WARNING means", "Last outcome"],
            [
                (
                    c.name,
                    c.type,
                    *check_meaning(c, dataset.freshness),
                    c.last_result.outcome if c.last_result else "never run",
                )
                for c in checks
            ],
        )
    return lines


def _connections(facts: ProjectFacts) -> list[str]:
    lines = ["## Connections used", ""]
    if not facts.used_connections:
        return [*lines, "None.", ""]
    known = {c.name: c for c in facts.connections}
    lines += _table(
        ["Connection", "Type", "Credentials", "Writes"],
        [
            (
                name,
                known[name].type,
                known[name].credentials_mode,
                "allowed" if known[name].allow_write else "read-only",
            )
            if name in known
            else (name, "not visible to you", "-", "-")
            for name in facts.used_connections
        ],
    )
    lines += [
        "Their addresses and credentials are kept in the platform, never in this guide. "
        "`himalia connection list` shows what you may see of them; an administrator tests one with "
        "`POST /connections/NAME/test`.",
        "",
    ]
    return lines


def _access(facts: ProjectFacts, admin_names: str) -> list[str]:
    key = facts.project.key
    lines = ["## Access", ""]
    lines += _table(
        ["Who", "Holds"],
        [(f"{g.principal_type} {g.principal}", g.preset or ", ".join(g.permissions)) for g in facts.grants],
    )
    lines += _table(
        ["To", "One needs"],
        [
            ("read results and dashboards", "read_dashboards (preset reader)"),
            ("read datasets and this guide", "read_content (preset reader)"),
            ("run scenarios", "run_scenarios (preset launcher)"),
            ("change scenarios, datasets, checks", "write_content (preset contributor)"),
            ("grant access", "admin on the project"),
        ],
    )
    lines += [
        f"**Who can grant access**: the project's administrators ({admin_names or 'none'}) and the platform's "
        "administrators.",
        "",
        f"**Why can't someone see or run this?** A project administrator runs "
        f"`himalia project explain {key} LOGIN PERMISSION` (or `GET /auth-matrix/explain?user=LOGIN&project={key}"
        "&permission=PERMISSION`): it names the grant that gives the permission, or what is missing and the "
        f"command that grants it, such as `himalia project grant {key} --user LOGIN --preset reader`. "
        "Someone without any grant sees no project at all, exactly as if it did not exist.",
        "",
    ]
    return lines


def render_html(markdown: str, title: str) -> str:
    """The guide as one self-contained HTML page: no script, stylesheet or font from elsewhere."""
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}"
    "table{border-collapse:collapse;margin:0.5rem 0}th,td{border:1px solid #ccc;padding:0.25rem 0.5rem;"
    "text-align:left;vertical-align:top}pre{background:#f4f4f4;padding:0.75rem;overflow-x:auto}"
    "code{font-size:0.9em}"
)


def operations_guide(sources: GuideSources, caller: Caller, key: str, now: datetime, html: bool = False) -> str:
    """The guide of project ``key`` as Markdown, or as an HTML page."""
    facts = gather(sources, caller, key)
    markdown = render_markdown(facts, now)
    if html:
        return render_html(markdown, f"{facts.project.name} ({key}): operations guide")
    return markdown
