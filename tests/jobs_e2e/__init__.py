"""End-to-end job tests: the Duralane app on the embedded runtime, over HTTP."""
