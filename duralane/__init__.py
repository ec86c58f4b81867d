"""Duralane: a job scheduler built as an Azure Durable Functions app."""

__version__ = "0.1.0"
