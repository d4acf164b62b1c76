"""The maintenance run: facts, the run itself, and its scheduler (the assessment is operations/assessment, shared by every surface)."""
