#!/usr/bin/env bash
# The README's first command: install svcssl and start it on its embedded default
# (no config file; state in ./state). Until the web panel lands this shows the
# service table from the command line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/svcssl list "$@"
