"""User isolation on one machine: a person's notebooks run as that person's own OS account.

Dataiku calls it the User Isolation Framework. Without it, every scenario kernel runs as the
control plane's OS user and can read the store, the keys and the service's environment, and
write into the home. With it (``UserIsolation.mode = "os_accounts"``, the default), the local
executor maps each Himalia login to an account (``himalia-{login}``), creates it on first use
when the control plane runs as root and ``create_accounts`` is on, and starts the step's worker
with that account's uid and gid, no supplementary groups, umask 077, a minimal environment and
a job folder that only the account can enter; the control plane reads the results back without
following links the account could have planted.

A shared account (``shared_account_unsafe``) remains for development machines where the control
plane cannot switch users; it is unsafe and named so.
"""

import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from traitlets import Bool, Bunch, Enum, Unicode, default, validate
from traitlets.config import LoggingConfigurable

from himalia.core.config import absolute_path, environment_default
from himalia.core.errors import HimaliaError

#: Longest user name ``useradd`` accepts on Linux.
MAX_ACCOUNT_NAME = 32
_POSIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]*$")
_NOT_IN_NAME = re.compile(r"[^a-z0-9_-]+")
#: ``useradd``'s exit statuses when /etc/passwd or /etc/group is locked by another process.
USERADD_LOCKED = frozenset({1, 10})
USERADD_ATTEMPTS = 20
USERADD_RETRY_SECONDS = 0.25
#: The control plane's pid in a job folder's name (``run-12-p3456-k2j1``).
_JOB_OWNER = re.compile(r"-p(\d+)-")


class IsolationUnavailable(HimaliaError):
    """A notebook step cannot run as its person's own OS account: said in a sentence naming what is missing."""


@dataclass(frozen=True)
class OsAccount:
    name: str
    uid: int
    gid: int
    home: Path


def account_name(template: str, login: str) -> str:
    """The POSIX user name of ``login`` under ``template`` (``"himalia-{login}"``).

    Characters a user name may not hold become ``-``; when the login had to change (case,
    ``@``, ``.``) or the name is too long, a digest of the login is appended so that two logins
    never share an account (``Bob.Smith`` and ``bob-smith``).
    """
    cleaned = _NOT_IN_NAME.sub("-", login.lower()).strip("-") or "user"
    name = template.format(login=cleaned)
    if cleaned == login and len(name) <= MAX_ACCOUNT_NAME and _POSIX_NAME.match(name):
        return name
    digest = hashlib.sha256(login.encode()).hexdigest()[:8]
    stem = template.format(login=cleaned)[: MAX_ACCOUNT_NAME - len(digest) - 1].rstrip("-")
    name = f"{stem}-{digest}"
    if not _POSIX_NAME.match(name):
        raise IsolationUnavailable(f"UserIsolation.account_template {template!r} does not make a valid user name")
    return name


def find_account(name: str) -> OsAccount | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return OsAccount(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def unreachable_by(account: OsAccount, path: Path, *, execute: bool = False) -> Path | None:
    """The first of ``path``'s folders ``account`` cannot go through, or ``path`` itself if it
    cannot read it (and list it, or run it), judged from the modes as the kernel would for a
    process holding only the account's uid and primary gid."""

    def allowed(st: os.stat_result, bits: int) -> bool:
        if st.st_uid == account.uid:
            return st.st_mode & (bits << 6) == bits << 6
        if st.st_gid == account.gid:
            return st.st_mode & (bits << 3) == bits << 3
        return st.st_mode & bits == bits

    resolved = path.resolve()
    for folder in reversed(resolved.parents):
        if not allowed(os.stat(folder), 0o1):
            return folder
    st = os.stat(resolved)
    wanted = 0o5 if execute or stat.S_ISDIR(st.st_mode) else 0o4
    return None if allowed(st, wanted) else resolved


def python_paths() -> list[Path]:
    """What a worker needs to reach to start: the interpreter, the standard library, the installed packages."""
    paths = sysconfig.get_paths()
    found = [Path(sys.executable), Path(paths["stdlib"]), Path(paths["purelib"]), Path(__file__).parents[1]]
    return [path for path in found if path.exists()]


class UserIsolation(LoggingConfigurable):
    """How the local executor separates people's notebooks from the platform and from each other.

    ``for_login`` answers the account a step runs as (``None`` in the shared mode), creating it
    when allowed; ``job_folder`` makes the folder a step may write.
    """

    mode = Enum(
        ["os_accounts", "shared_account_unsafe"],
        config=True,
        help="""`os_accounts` (default): each notebook step runs as its run-as user's own OS
        account (see `account_template`); the control plane must run as root to start them, and
        refuses notebook steps otherwise. `shared_account_unsafe`: every step runs as the control
        plane's own OS user, whose files (the store, the keys, the service's environment) the
        notebooks can then read and write. For a development machine only; running notebooks
        then needs `write_unsafe_code`, as the code runs with the platform's rights. Defaults to
        $HIMALIA_USER_ISOLATION, else `os_accounts`.""",
    )
    account_template = Unicode(
        "himalia-{login}",
        config=True,
        help="""The OS account of a Himalia login; `{login}` is the login made a valid user name
        (lowercase letters, digits, `-`, `_`; a digest of the login is appended when it had to
        change or is too long).""",
    )
    create_accounts = Bool(
        True,
        config=True,
        help="""Create a missing account on first use (`useradd --system --create-home --user-group`,
        no login shell), when the control plane runs as root. Off: a step whose account does not
        exist fails, naming the account to create.""",
    )
    job_root = Unicode(
        config=True,
        help="""Folder holding one folder per running notebook step, owned by its account, mode 0700.
        It must lie where the accounts can reach it, so not inside the control plane's home
        (0700); it is made root-owned, mode 0711 (no listing). Default: /var/lib/himalia/jobs
        when isolating, else `work/` in the home.""",
    )

    home = Unicode(help="The control plane's home (set by the control plane).")

    _default_mode = environment_default("mode", "HIMALIA_USER_ISOLATION", "os_accounts")

    @default("job_root")
    def _default_job_root(self) -> str:
        if self.mode == "os_accounts":
            return "/var/lib/himalia/jobs"
        return str(Path(self.home) / "work")

    @validate("job_root")
    def _absolute_job_root(self, proposal: Bunch) -> str:
        """Workers start inside their job folder: a relative root would name another place there."""
        return absolute_path(proposal["value"])

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._lock = threading.Lock()
        self._checked: dict[str, OsAccount] = {}

    @property
    def isolated(self) -> bool:
        return self.mode == "os_accounts"

    def for_login(self, login: str | None) -> OsAccount | None:
        """The account ``login``'s steps run as (created if allowed), or ``None`` when sharing the plane's."""
        if not self.isolated:
            return None
        if login is None:
            raise IsolationUnavailable("a notebook step needs a run-as user to pick its OS account")
        if os.geteuid() != 0:
            raise IsolationUnavailable(
                "notebook steps run as each person's own OS account, which needs the control plane to run "
                "as root; run it as root, or set c.UserIsolation.mode = 'shared_account_unsafe' "
                "(unsafe: notebooks then read and write the platform's files)"
            )
        name = account_name(self.account_template, login)
        with self._lock:
            if name in self._checked:
                return self._checked[name]
            account = find_account(name) or self._create(name)
            if account.uid == 0 or account.gid == 0 or account.uid == os.geteuid():
                raise IsolationUnavailable(f"the OS account '{name}' is privileged (uid {account.uid}); refusing it")
            for path in python_paths():
                blocked = unreachable_by(account, path, execute=path == Path(sys.executable))
                if blocked is not None:
                    raise IsolationUnavailable(
                        f"the OS account '{name}' cannot reach {blocked} (needed for {path}): install Python "
                        "and the notebooks' packages where every account may read them"
                    )
            self._checked[name] = account
            return account

    def _create(self, name: str) -> OsAccount:
        if not self.create_accounts:
            raise IsolationUnavailable(
                f"the OS account '{name}' does not exist: create it (useradd --system --create-home {name}) "
                "or set c.UserIsolation.create_accounts = True"
            )
        command = ["useradd", "--system", "--create-home", "--user-group", "--shell", "/usr/sbin/nologin"]
        for _attempt in range(USERADD_ATTEMPTS):
            done = subprocess.run([*command, "--comment", "Himalia user", name], capture_output=True, text=True)
            if done.returncode not in USERADD_LOCKED or find_account(name) is not None:
                break
            time.sleep(USERADD_RETRY_SECONDS)  # another process (the hub, a second control plane) holds the lock
        account = find_account(name)  # another process may have created it meanwhile
        if account is None:
            raise IsolationUnavailable(f"cannot create the OS account '{name}': {done.stderr.strip()}")
        self.log.info("Created the OS account %s (uid %d) for notebook steps", name, account.uid)
        if account.home.is_dir() and account.home.stat().st_uid == account.uid:
            os.chmod(account.home, 0o700)
        return account

    def job_folder(self, account: OsAccount | None, prefix: str) -> Path:
        """A new folder for one step: the account's alone (0700), in a root folder it cannot list.
        Its name carries this control plane's pid, so that ``reap_job_folders`` knows whose it is."""
        root = Path(self.job_root)
        root.mkdir(parents=True, exist_ok=True)
        prefix = f"{prefix}p{os.getpid()}-"
        if account is None:
            return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
        st = os.lstat(root)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise IsolationUnavailable(
                f"{root} must be a folder of the control plane's user that nobody else can write"
            )
        os.chmod(root, 0o711)
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
        os.chown(folder, account.uid, account.gid)
        return folder

    def reap_job_folders(self) -> list[Path]:
        """Remove the job folders control planes that no longer run left behind (a crash, a kill -9):
        what their kernels wrote stays nowhere. Folders of running control planes are kept."""
        root = Path(self.job_root)
        removed = []
        for folder in root.glob("*-p*-*") if root.is_dir() else []:
            owner = _JOB_OWNER.search(folder.name)
            if owner is not None and not psutil.pid_exists(int(owner.group(1))):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        if removed:
            self.log.warning("Removed %d job folders of stopped control planes from %s", len(removed), root)
        return removed

    def environment(self, account: OsAccount | None, inherited: dict[str, str], folder: Path) -> dict[str, str]:
        """The worker's environment: the plane's (already cleaned) when shared; a minimal one when isolated,
        with the account's home and the Jupyter runtime files kept in the job folder."""
        if account is None:
            return dict(inherited)
        home = account.home if account.home.is_dir() else folder
        env = {
            "HOME": str(home),
            "USER": account.name,
            "LOGNAME": account.name,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
            "JUPYTER_RUNTIME_DIR": str(folder / ".runtime"),
            "IPYTHONDIR": str(folder / ".ipython"),
            "MPLCONFIGDIR": str(folder / ".matplotlib"),
        }
        env.update({k: v for k, v in inherited.items() if k in ("LANG", "LC_ALL", "TZ")})
        return env


def read_produced(folder: Path, name: str, account: OsAccount | None) -> bytes | None:
    """A file a step's worker left in its folder, or ``None``: never through a link, never a file
    that is not the account's own (a hard link to the store, a device, a pipe)."""
    try:
        descriptor = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as handle:
        st = os.fstat(handle.fileno())
        owner_ok = account is None or st.st_uid == account.uid
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or not owner_ok:
            return None
        return handle.read()
