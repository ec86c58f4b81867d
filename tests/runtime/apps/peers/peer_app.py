"""Sample app whose durable client starts work in a second task hub, PeerRemote.

Run twice, the second runtime told `--peer PeerRemote=<first's URL>`, its
client's calls must reach the first runtime, which runs that hub's work.
"""

import json
import os

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
REMOTE_HUB = "PeerRemote"


@app.orchestration_trigger(context_name="context")
def greet_when_told(context: df.DurableOrchestrationContext):
    name = yield context.wait_for_external_event("go")
    greeting = yield context.call_activity("greet", name)
    return greeting


@app.activity_trigger(input_name="name")
def greet(name: str) -> dict:
    return {"greeting": f"hello {name}", "pid": os.getpid()}


@app.route(route="pid", methods=["GET"])
def pid(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(os.getpid()))


@app.route(route="remote/start/{id}", methods=["POST"])
@app.durable_client_input(client_name="client", task_hub=REMOTE_HUB)
async def remote_start(req: func.HttpRequest, client) -> func.HttpResponse:
    instance_id = await client.start_new(
        "greet_when_told", req.route_params["id"], None
    )
    return client.create_check_status_response(req, instance_id)


@app.route(route="remote/raise/{id}", methods=["POST"])
@app.durable_client_input(client_name="client", task_hub=REMOTE_HUB)
async def remote_raise(req: func.HttpRequest, client) -> func.HttpResponse:
    await client.raise_event(req.route_params["id"], "go", req.get_json())
    return func.HttpResponse(status_code=202)


@app.route(route="remote/status/{id}", methods=["GET"])
@app.durable_client_input(client_name="client", task_hub=REMOTE_HUB)
async def remote_status(req: func.HttpRequest, client) -> func.HttpResponse:
    status = await client.get_status(req.route_params["id"])
    runtime_status = status.runtime_status.value if status.runtime_status else None
    body = {"runtimeStatus": runtime_status, "output": status.output}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")
