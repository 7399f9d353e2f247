"""Run user-written Python ("unsafe code") in a child process with a time limit.

Custom checks and custom Python metrics are code that people with the ``write_unsafe_code``
permission wrote; it runs as the platform, as Dataiku's unsafe code does, but in a separate
process so that an endless loop or a crash cannot take a worker of the control plane with it.
Arguments and results travel as JSON over stdin and stdout; secrets never go on a command line.
"""

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

#: The child: read {"code", "function", "arguments", "setup"} on stdin, print {"result"} or {"error"}.
_CHILD = r"""
import json, sys, traceback
request = json.load(sys.stdin)
namespace = {"__name__": "himalia_unsafe"}
answer = sys.stdout
sys.stdout = sys.stderr  # what the code prints must not mix with the answer
try:
    arguments = request["arguments"]
    if request.get("setup"):
        from importlib import import_module
        module, _, name = request["setup"].rpartition(".")
        arguments = [getattr(import_module(module), name)(*arguments)]
    exec(compile(request["code"], "<user code>", "exec"), namespace)
    function = namespace.get(request["function"])
    if not callable(function):
        raise NameError(f"the code defines no function {request['function']}()")
    result = function(*arguments)
    json.dump({"result": result}, answer, default=str)
except BaseException as error:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == "<user code>"]
    line = f" (line {frames[-1].lineno})" if frames else ""
    json.dump({"error": f"{type(error).__name__}: {error}{line}"}, answer)
"""


@dataclass(frozen=True)
class UnsafeOutcome:
    result: Any = None
    error: str | None = None


def run_function(
    code: str, function: str, arguments: list[Any], *, setup: str | None = None, timeout: float = 60.0
) -> UnsafeOutcome:
    """Define ``code``, call ``function(*arguments)`` in a child process; never raise for the code's faults.

    ``setup`` names a ``module.function`` the child calls with ``arguments`` first, its result
    becoming the only argument (used to load a DataFrame in the child, not in the control plane).
    """
    request = json.dumps({"code": code, "function": function, "arguments": arguments, "setup": setup})
    try:
        completed = subprocess.run(
            [sys.executable, "-c", _CHILD], input=request, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return UnsafeOutcome(error=f"TimeoutError: the code ran longer than {timeout:g} s")
    try:
        answer = json.loads(completed.stdout)
    except ValueError:
        tail = completed.stderr.strip().splitlines()[-1:] or [f"exit status {completed.returncode}"]
        return UnsafeOutcome(error=f"The code's process failed: {tail[0]}")
    return UnsafeOutcome(result=answer.get("result"), error=answer.get("error"))
