"""A sample app that cannot be imported, to check the runtime's start-up error."""

import azure.durable_functions as df

app = df.DFApp()

raise RuntimeError("the database URL setting is missing")
