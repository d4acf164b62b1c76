"""The maintenance run: policy (pure), facts, the run itself, and its scheduler."""
