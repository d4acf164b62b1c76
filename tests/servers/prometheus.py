"""Debian's ``prometheus`` server on a free loopback port, from a config under a work directory.

``start_prometheus(workdir, scrape_configs, rule_files)`` writes prometheus.yml (scrape and evaluation
interval 1 s), starts the server in the foreground, waits until /-/ready answers and returns a
:class:`RunningPrometheus`; ``query()`` asks its HTTP API, ``stop()`` ends it by PID.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from support.process import terminate
from support.wait import wait_until

from .ports import free_port

START_TIMEOUT = 30.0
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy


@dataclass
class RunningPrometheus:
    url: str
    log: Path
    process: subprocess.Popen

    def get(self, path: str, **params: str) -> dict:
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        with _direct.open(self.url + path + query, timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict]:
        """The instant vector ``promql`` evaluates to now: [{"metric": {labels}, "value": [time, "text"]}, …]."""
        return self.get("/api/v1/query", query=promql)["result"]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        terminate(self.process)


def start_prometheus(workdir: Path, scrape_configs: list[dict], rule_files: list[Path] = ()) -> RunningPrometheus:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": scrape_configs,
    }, indent=2))
    port = free_port()
    log = workdir / "prometheus.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=info"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)
    running = RunningPrometheus(f"http://127.0.0.1:{port}", log, process)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited ({process.returncode}):\n{running.output()}")
        with _direct.open(running.url + "/-/ready", timeout=2) as response:
            return response.status == 200

    if not wait_until(ready, timeout=START_TIMEOUT, interval=0.2):
        running.stop()
        raise AssertionError(f"prometheus did not become ready within {START_TIMEOUT} s:\n{running.output()}")
    return running
