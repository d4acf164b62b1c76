"""Use cases: inventory, install, reset, rollback, first run. Called by the CLI, web, API and maintenance."""
