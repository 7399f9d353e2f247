"""The worker's output filters: paths scrubbed, the kernel application's own lines dropped."""

from pathlib import Path

from himalia.execution.worker_output import KERNEL_APP_LINE, PathScrubber


def test_the_job_folder_reads_as_dot_and_the_home_as_tilde() -> None:
    scrubber = PathScrubber(Path("/home/himalia-bob/work/run-7-p1-abc"), "/home/himalia-bob")
    text = "in /home/himalia-bob/work/run-7-p1-abc/project, config in /home/himalia-bob/.config, /homely"
    assert scrubber.text(text) == "in ./project, config in ~/.config, /homely"


def test_a_root_home_is_left_alone() -> None:
    assert PathScrubber(Path("/var/lib/himalia/jobs/run-1"), "/").text("/etc/x /var/lib/himalia/jobs/run-1/a") == (
        "/etc/x ./a"
    )


def test_kernel_application_lines_below_error_are_recognised() -> None:
    assert KERNEL_APP_LINE.match("[IPKernelApp] WARNING | Kernel is running over TCP without encryption.")
    assert not KERNEL_APP_LINE.match("[IPKernelApp] ERROR | Exception in message handler")
    assert not KERNEL_APP_LINE.match("print('[IPKernelApp] WARNING | mine')")
