"""An app whose import is slow in episode processes, to check start-up readiness."""

import logging
import sys
import time

import azure.durable_functions as df

# Episode processes run as `python -c ...`; the runtime itself does not.
if sys.argv[0] == "-c":
    time.sleep(1.0)
    logging.getLogger("readiness_sample_app").warning("episode process imported")

app = df.DFApp()


@app.orchestration_trigger(context_name="context")
def ready_orchestrator(context: df.DurableOrchestrationContext):
    return "ready"
