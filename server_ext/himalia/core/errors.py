"""Domain errors.

The services raise only these; each web host maps every class to exactly one HTTP
status in one place, and the CLI prints their message as its one-line reason.
"""


class HimaliaError(Exception):
    """Base of every error a person is meant to read."""

    status = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(HimaliaError):
    """The request is well-formed but a value is not acceptable; ``field`` names it."""

    status = 400


class Unauthenticated(HimaliaError):
    status = 401


class Forbidden(HimaliaError):
    """The caller may see the object but not do this to it."""

    status = 403


class NotFound(HimaliaError):
    """Absent, or present but hidden from the caller: the two are indistinguishable."""

    status = 404


class Conflict(HimaliaError):
    status = 409


class TooBusy(HimaliaError):
    """A limit on concurrent or queued work is reached; trying later may succeed."""

    status = 429


class SchemaMismatch(HimaliaError):
    """The database is not at the revision this code expects."""


class HomeUnusable(HimaliaError):
    """The control plane cannot write its home (read-only, not its own, full): said in one line at start."""


class StoreUnavailable(HimaliaError):
    """The database cannot be reached (down, restarting, refusing connections); trying later may succeed."""

    status = 503


class StorageFull(HimaliaError):
    """The disk (or the database's own size limit) is full: nothing more can be written until space is freed."""

    status = 507


def ask_for(missing: str, grantors: list[str], role: str) -> str:
    """How a refusal ends: who can grant what is ``missing``, ``grantors`` being people the caller may see.

    ``ask alice or dave (FRAUD administrators) for it, or an administrator``; without anyone to
    name, an administrator. At most three names, so that a refusal stays one line.
    """
    if not grantors:
        return f"ask an administrator for {missing}"
    shown = grantors[:3] + (["others"] if len(grantors) > 3 else [])
    names = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
    return f"ask {names} ({role}) for {missing}, or an administrator"
