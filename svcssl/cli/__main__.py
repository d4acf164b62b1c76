"""`python -m svcssl.cli`: the same command as the `svcssl` console script (and what the panel's restart
re-executes)."""

import sys

from . import main

sys.exit(main())
