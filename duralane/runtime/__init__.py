"""The embedded runtime: runs a Durable Functions Python app on one machine."""
