"""Run a daemon's reload or config-test command (an argv list, never a shell string)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass

OUTPUT_LIMIT = 4000


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe(self) -> str:
        command = " ".join(self.argv)
        text = self.output.strip()
        return f"`{command}` exited {self.returncode}" + (f": {text}" if text else "")


def run_command(argv: tuple[str, ...] | list[str], timeout: float) -> CommandResult:
    argv = tuple(argv)
    try:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=timeout, check=False,
        )
    except FileNotFoundError:
        return CommandResult(argv, 127, f"command not found: {argv[0]}")
    except PermissionError:
        return CommandResult(argv, 126, f"permission denied: {argv[0]}")
    except subprocess.TimeoutExpired as exc:
        output = (exc.output or b"").decode("utf-8", "replace")
        return CommandResult(argv, 124, f"timed out after {timeout:g} s. {output}"[:OUTPUT_LIMIT])
    output = proc.stdout.decode("utf-8", "replace")
    if len(output) > OUTPUT_LIMIT:
        output = output[:OUTPUT_LIMIT] + "…"
    return CommandResult(argv, proc.returncode, output)
