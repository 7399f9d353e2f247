"""What a notebook step's kernel runs on, for the run's reproducibility record.

The kernel's own interpreter is asked, in the step's account and environment, beside the kernel
while the notebook runs: its Python version and every installed distribution with its version
(``importlib.metadata``, what ``pip freeze`` reads). A kernel that is not Python's records its
name and language only. The record is the environment's word about itself, as a lock file is:
enough to see that two runs differed and in which package, not a proof against the run's code.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

from himalia.wire.steps import MAX_PACKAGES, KernelEnvironment

#: Run by the kernel's interpreter: prints its version, its path and its distributions as JSON.
PROBE = """
import importlib.metadata, json, platform, sys
packages = {}
for distribution in importlib.metadata.distributions():
    name = distribution.metadata["Name"]
    if name:
        packages.setdefault(name, distribution.version)
print(json.dumps({"python": platform.python_version(), "executable": sys.executable, "packages": packages}))
"""
#: How long the probe may take once the notebook has run, in seconds.
PROBE_TIMEOUT = 20.0
#: How the probe yields the processor to the step (``nice`` where the system has it).
NICEST = ["nice", "-n", "19"] if shutil.which("nice") else []
#: The names jupyter_client runs as its own interpreter when a kernelspec's command starts with them.
OWN_PYTHON = {"python", "python3", f"python{sys.version_info[0]}"}


def canonical(name: str) -> str:
    """A distribution's name as PyPI compares them (PEP 503): ``Jupyter_Core`` is ``jupyter-core``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def environment_digest(python: str | None, packages: dict[str, str]) -> str:
    lines = [f"python=={python or ''}", *(f"{name}=={packages[name]}" for name in sorted(packages))]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


class EnvironmentProbe:
    """The probe of one step's kernel, started with the step and read when it ends."""

    def __init__(self, kernel: str | None, language: str | None, process: subprocess.Popen[bytes] | None) -> None:
        self.kernel, self.language, self.process = kernel, language, process

    @classmethod
    def start(cls, kernel: str | None) -> "EnvironmentProbe":
        """Ask the interpreter of kernel ``kernel`` (its kernelspec's command) what it has."""
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        try:
            spec = KernelSpecManager().get_kernel_spec(kernel or "python3")
        except (NoSuchKernel, ValueError, OSError):
            return cls(kernel, None, None)
        language = spec.language or None
        if (language or "").lower() != "python" or not spec.argv:
            return cls(kernel, language, None)
        command = spec.argv[0]
        executable = sys.executable if command in OWN_PYTHON else shutil.which(command) or command
        try:
            process = subprocess.Popen(
                # At the lowest priority: the kernel starting beside it comes first.
                [*NICEST, executable, "-c", PROBE],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=os.environ.copy(),
            )
        except OSError:
            process = None
        return cls(kernel, language, process)

    def result(self) -> KernelEnvironment:
        """The record; only the kernel's name and language when the interpreter did not answer."""
        known = KernelEnvironment(kernel=self.kernel, language=self.language)
        if self.process is None:
            return known
        try:
            output, _ = self.process.communicate(timeout=PROBE_TIMEOUT)
            answer = json.loads(output)
            packages = {canonical(str(name)): str(version) for name, version in dict(answer["packages"]).items()}
            python = str(answer["python"])
        except (subprocess.TimeoutExpired, ValueError, KeyError, TypeError):
            self.process.kill()
            return known
        if len(packages) > MAX_PACKAGES:
            return known
        return KernelEnvironment(
            kernel=self.kernel,
            language=self.language,
            python=python,
            executable=str(answer.get("executable") or "")[:1000] or None,
            packages=packages,
            digest=environment_digest(python, packages),
        )
