#!/usr/bin/env bash
# The README's first command: install svcssl and start the panel on its embedded default
# (no config file; state in ./state). It prints the HTTPS address and, on the first start,
# root's generated password. Extra arguments go to `svcssl serve` (e.g. --listen 127.0.0.1:2087).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/svcssl serve "$@"
