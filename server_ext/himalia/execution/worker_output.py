"""What a worker writes to the run log: what the notebook printed and papermill's progress.

Everyone who may read a run reads its log, so the worker keeps out of it what is the platform's
plumbing rather than the notebook's: the job folder's and the account's home's absolute paths
(shown as ``.`` and ``~``), papermill's lines naming its input and output files, the kernel's own
start-up warnings ("Kernel is running over TCP without encryption"), and the log records and
deprecation warnings of the libraries that drive the kernel (jupyter_client, nbclient,
traitlets), whose failures the step's outcome already says in a sentence.
"""

import logging
import os
import re
import sys
import threading
import warnings
from pathlib import Path
from typing import TextIO

#: The log lines of a kernel application (ipykernel's ``[IPKernelApp] WARNING | …``), below ERROR.
KERNEL_APP_LINE = re.compile(r"^\[[A-Za-z]*KernelApp\] (DEBUG|INFO|WARNING) \| ")
#: papermill's lines about its own files and folder, which name the job folder.
PAPERMILL_PLUMBING = ("Input Notebook:", "Output Notebook:", "Working directory:")


class PathScrubber:
    """Replaces the job folder (and the worker's own, if it has one) by ``.`` and the home by ``~`` in text."""

    def __init__(self, folders: Path | tuple[Path, ...], home: str) -> None:
        folders = (folders,) if isinstance(folders, Path) else folders
        spellings = {spelling for folder in folders for spelling in (str(folder), os.path.realpath(folder))}
        replacements = [(spelling, ".") for spelling in spellings]
        if home and Path(home).parts[1:]:  # never "/", which would blank every path
            replacements += [(spelling, "~") for spelling in {home.rstrip("/"), os.path.realpath(home)}]
        # The longest first: the job folder usually lies below the home.
        replacements.sort(key=lambda pair: len(pair[0]), reverse=True)
        self._pattern = re.compile("|".join(re.escape(path) for path, _ in replacements))
        self._by_path = dict(replacements)

    def text(self, text: str) -> str:
        return self._pattern.sub(lambda match: self._by_path[match.group(0)], text)


class ScrubbedStream:
    """A text stream that writes to ``stream`` with the paths scrubbed (what the worker hands
    papermill and its log handler as standard output)."""

    def __init__(self, stream: TextIO, scrubber: PathScrubber) -> None:
        self.stream, self.scrubber = stream, scrubber
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.stream.write(self.scrubber.text(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()


class _NotPlumbing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(PAPERMILL_PLUMBING)


def quiet_libraries() -> None:
    """Before the job: papermill's progress lines only; other libraries' records and the worker's
    own warnings (deprecations of the kernel client) stay out of the log."""
    warnings.simplefilter("ignore")
    logging.getLogger().addHandler(logging.NullHandler())  # no "last resort" printing to stderr
    logging.getLogger().setLevel(logging.CRITICAL)
    papermill = logging.getLogger("papermill")
    papermill.setLevel(logging.INFO)
    papermill.propagate = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[papermill] %(message)s"))
    handler.addFilter(_NotPlumbing())
    papermill.addHandler(handler)


def _forward(source: int) -> None:
    with os.fdopen(source, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not KERNEL_APP_LINE.match(line):
                sys.stdout.write(line)  # the scrubbed stream once the job is known (``scrub_output``)
                sys.stdout.flush()


def route_stderr() -> None:
    """Route standard error (which kernels inherit) through a thread that drops the kernel
    application's own warnings; done before any kernel starts, one started ahead of its job included."""
    reading, writing = os.pipe()
    os.dup2(writing, 2)
    os.close(writing)
    threading.Thread(target=_forward, args=(reading,), name="himalia-stderr", daemon=True).start()


def scrub_output(*folders: Path) -> ScrubbedStream:
    """Scrub the job's paths (``folders`` read as ``.``, the home as ``~``) from standard output and
    error. Returns the stream now installed as ``sys.stdout``; papermill's handler writes there too."""
    scrubbed = ScrubbedStream(sys.__stdout__ or sys.stdout, PathScrubber(folders, os.environ.get("HOME", "")))
    sys.stdout = sys.stderr = scrubbed
    for handler in logging.getLogger("papermill").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(scrubbed)
    return scrubbed


def clean_output(folder: Path) -> ScrubbedStream:
    """Both at once, for a process whose job is known before its kernel starts (a Kubernetes step's pod)."""
    route_stderr()
    return scrub_output(folder)
