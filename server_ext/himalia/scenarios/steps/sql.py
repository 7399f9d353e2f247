"""``sql``: one statement on a sql connection, with ``${name}`` references bound as parameters."""

import re
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import selectinload

from himalia.core.variables import REFERENCE, expand
from himalia.data.access import one_statement
from himalia.data.drivers import driver_message, scrub, sql_engine
from himalia.scenarios.steps.base import RunContext, StepFailed, StepKind, StepOutcome
from himalia.store.orm import Connection
from himalia.wire.definitions import SqlStep
from himalia.wire.scenarios import StepState


class Sql(StepKind[SqlStep]):
    definition = SqlStep

    def run(self, context: RunContext, position: int, step: SqlStep) -> StepOutcome:
        connections = context.host.services.connections
        with connections.db.read() as session:
            connection = session.scalar(
                select(Connection)
                .options(selectinload(Connection.group_access))
                .where(Connection.name == step.connection)
            )
            if connection is None:
                raise StepFailed(f"there is no connection '{step.connection}' any more")
            usable = connections.usable(session, context.actor, connection)
        if usable.type != "sql":
            raise StepFailed(f"'{step.connection}' is not a sql connection")
        variables = context.variables()
        bound: dict[str, Any] = {k: expand(v, variables) for k, v in step.parameters.items()}

        def bind(match: re.Match[str]) -> str:
            if match.group(1):  # $${name}: a literal ${name}
                return "${" + match.group(2) + "}"
            if match.group(2) not in variables:
                raise StepFailed(f"statement: there is no variable '{match.group(2)}'")
            name = "v_" + re.sub(r"\W", "_", match.group(2))
            bound[name] = variables[match.group(2)]
            return ":" + name

        statement = REFERENCE.sub(bind, step.statement)
        backend = make_url(usable.params["url"]).get_backend_name()
        statement = one_statement(statement, backend, field="statement", query=False)
        engine = sql_engine(usable, writable=True)  # read-only in the database unless the connection allows writes
        try:
            with engine.connect() as sql, sql.begin():
                result = sql.execute(text(statement), bound)
                rows = [list(r) for r in result.fetchmany(20)] if result.returns_rows else []
                affected = result.rowcount if not result.returns_rows else len(rows)
        except Exception as error:
            raise StepFailed(scrub(driver_message(error, usable.secrets), usable.secrets)) from None
        finally:
            engine.dispose()
        note = "" if usable.allow_write else " (read-only connection)"
        outputs = {"rows": [[str(v) for v in row] for row in rows], "affected": affected}
        return StepOutcome(StepState.SUCCEEDED, f"{affected} rows{note}", outputs)
