"""Duralane's Azure Functions app: wiring only; the functions live in Blueprints."""

import azure.functions as func

from activities.jobs import bp as job_activities
from duralane import telemetry
from duralane.settings import Settings
from orchestrators.job import bp as job_orchestrations
from triggers.api import bp as http_api
from triggers.dashboard import bp as dashboard
from triggers.openapi import bp as openapi_document
from triggers.queues import bp as lane_queues
from triggers.schedules import bp as schedules
from triggers.stranded import bp as stranded_jobs

# A setting the app cannot use stops it here, naming the setting, instead of
# failing every request that reads it.
Settings.from_environ()
telemetry.configure()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

app.register_functions(http_api)
app.register_functions(dashboard)
app.register_functions(openapi_document)
app.register_functions(lane_queues)
app.register_functions(schedules)
app.register_functions(stranded_jobs)
app.register_functions(job_orchestrations)
app.register_functions(job_activities)
