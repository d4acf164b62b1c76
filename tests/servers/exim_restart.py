"""A reload for the test Exim that survives what a HUP does not always: stop by PID, start again, wait for 220.

Exim re-executes itself on SIGHUP. Started with ``-C`` (a config that is not in TRUSTED_CONFIG_LIST) it has
already given up root, and under load the re-executed daemon was seen not to come back ("lost privilege for
using -C"), leaving the port closed. The DANE tests change Exim's certificate several times and probe it with
``openssl s_client`` after each change, so their reload is this script: stop the daemon by the PID in its pid
file (only if that PID runs Exim's binary), start it again with the same argv (as root, so it drops privileges
the same way as at first start), and exit 0 once the port answers with a 220 greeting (1 after the timeout).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .daemons import HOST, START_TIMEOUT, RunningDaemon

_SCRIPT = r'''#!/usr/bin/env python3
import json, os, signal, socket, subprocess, sys, time

CONFIG = json.loads(%(config)r)


def running(pid):
    try:
        with open("/proc/%%d/stat" %% pid) as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rindex(")") + 2:].split()[0] not in ("Z", "X")


def ours(pid):
    try:
        return running(pid) and os.path.realpath(os.readlink("/proc/%%d/exe" %% pid)) == CONFIG["exe"]
    except OSError:
        return False


def stop():
    try:
        with open(CONFIG["pid_file"]) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if pid > 1 and ours(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + CONFIG["timeout"]
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if running(pid):
            os.kill(pid, signal.SIGKILL)


def greets():
    try:
        with socket.create_connection((CONFIG["host"], CONFIG["port"]), timeout=1.0) as sock:
            return sock.makefile("rb").readline(512).startswith(b"220")
    except OSError:
        return False


def main():
    stop()
    log = open(CONFIG["log"], "ab")
    for attempt in (1, 2):
        log.write(("--- start attempt %%d at %%s\n" %% (attempt, time.strftime("%%H:%%M:%%S"))).encode())
        log.flush()
        proc = subprocess.run(CONFIG["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True, timeout=CONFIG["timeout"])
        log.write(("exit %%d\n" %% proc.returncode).encode())
        log.flush()
        deadline = time.monotonic() + CONFIG["timeout"]
        while time.monotonic() < deadline:
            if greets():
                print("exim restarted (attempt %%d)" %% attempt)
                return 0
            time.sleep(0.05)
    print("exim did not come back on %%s:%%d" %% (CONFIG["host"], CONFIG["port"]), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
'''


def restart_reload(daemon: RunningDaemon) -> list[str]:
    """The argv of a reload that restarts ``daemon`` (a running test Exim from ``start_exim``)."""
    conf = daemon.workdir / "exim.conf"
    config = json.dumps({"argv": [daemon.executable, "-C", str(conf), "-bd"], "pid_file": str(daemon.pid_file),
                         "exe": daemon.executable, "host": HOST, "port": daemon.port, "timeout": START_TIMEOUT,
                         "log": str(daemon.workdir / "restart.out")})
    script = Path(daemon.workdir) / "restart-exim.py"
    script.write_text(_SCRIPT % {"config": config})
    script.chmod(0o755)
    return [sys.executable, str(script)]
