"""Activities: every side effect of a workflow happens here."""
