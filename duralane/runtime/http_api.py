"""The runtime's HTTP surface: the app's HTTP triggers, the Durable API, the queues.

The Durable Functions HTTP API is served under /runtime/webhooks/durabletask/
with the routes, status codes and payloads of the real extension, so the
unchanged DurableOrchestrationClient and any status-polling tool work.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import azure.functions as func
from aiohttp import web

from duralane.ids import random_hex
from duralane.runtime.app import FunctionEntry
from duralane.runtime.episode import TERMINAL_STATUSES, Instance
from duralane.runtime.history import EventType
from duralane.runtime.hubstore import InstanceExists
from duralane.runtime.servicebus import (
    MessageNotFound,
    QueueMessage,
    QueueNotFound,
    ServiceBusQueueError,
)

if TYPE_CHECKING:
    from duralane.runtime.host import Runtime

logger = logging.getLogger(__name__)

WEBHOOK_PREFIX = "/runtime/webhooks/durabletask"
QUEUE_PREFIX = "/runtime/queues"
# The durable client binding's calls: WEBHOOK_PREFIX/rpc/<runtime's token>/...
RPC_SEGMENT = "rpc"
# Marks a management call one runtime passed on to the peer that runs its hub.
FORWARDED_HEADER = "X-Duralane-Forwarded-By"
# Bounds on a call passed on to a peer; past them the caller gets a 502. A
# start that waits for its instance (?timeout=) waits at most this long.
PEER_CALL_SECONDS = 120.0
# How long a request that arrives while the runtime starts waits for it: the
# episode processes' import of the app, bounded at startup by 120 s.
STARTUP_WAIT_SECONDS = 150.0
PEER_CONNECT_SECONDS = 10.0
ROUTE_PARAMETER = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\?)?\}")


def peer_token(api_key: str) -> str:
    """The rpc path secret runtimes sharing an API key give each other's clients.

    Derived from the key, so the key itself never appears in a URL, and
    hex, so it stays one path segment whatever the key holds. Empty without
    a key: peers on loopback need none.
    """
    if not api_key:
        return ""
    digest = hmac.new(api_key.encode(), b"duralane peer rpc", hashlib.sha256)
    return digest.hexdigest()


def is_loopback(host: str) -> bool:
    """Whether binding to this host keeps the runtime on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def json_response(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON response with the given status."""
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def error_response(status: int, message: str, **fields: Any) -> web.Response:
    """A JSON error body; never a stack trace."""
    return json_response(status, {"error": message, **fields})


@dataclass
class Route:
    """A compiled HTTP trigger route."""

    entry: FunctionEntry
    pattern: re.Pattern[str]
    methods: frozenset[str]
    literal_segments: int


def compile_route(entry: FunctionEntry) -> Route:
    """Turn an ASP.NET-style route template into a regular expression."""
    template = entry.route()
    parts: list[str] = []
    position = 0
    for match in ROUTE_PARAMETER.finditer(template):
        parts.append(re.escape(template[position : match.start()]))
        catch_all, name, optional = match.groups()
        body = f"(?P<{name}>.+)" if catch_all else f"(?P<{name}>[^/]+)"
        if optional:
            # An optional last segment may be missing along with its slash.
            if parts and parts[-1].endswith("/"):
                parts[-1] = parts[-1][:-1]
                body = f"(?:/{body})?"
            else:
                body = f"{body}?"
        parts.append(body)
        position = match.end()
    parts.append(re.escape(template[position:]))
    methods = frozenset(str(getattr(m, "value", m)).upper() for m in entry.methods())
    literal = sum(1 for seg in template.split("/") if seg and "{" not in seg)
    return Route(entry, re.compile("^" + "".join(parts) + "/?$"), methods, literal)


class HttpApi:
    """Builds the aiohttp application for one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._peers_client: aiohttp.ClientSession | None = None
        self.routes = sorted(
            (compile_route(entry) for entry in runtime.index.http),
            key=lambda r: -r.literal_segments,
        )

    def application(self) -> web.Application:
        """The aiohttp app with every route of the runtime."""
        app = web.Application(
            client_max_size=64 * 1024 * 1024, middlewares=[self._after_startup]
        )
        app.router.add_route("*", WEBHOOK_PREFIX + "/{tail:.*}", self.durable_api)
        app.router.add_route("*", QUEUE_PREFIX + "/{tail:.*}", self.queue_api)
        app.router.add_route("*", "/api/{tail:.*}", self.http_trigger)
        app.router.add_route("GET", "/", self.root)
        return app

    @web.middleware
    async def _after_startup(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]
    ) -> Any:
        """Hold a request that arrives before every hub runs, instead of a 404."""
        started = self.runtime.started
        if not started.is_set():
            try:
                await asyncio.wait_for(started.wait(), STARTUP_WAIT_SECONDS)
            except TimeoutError:
                return error_response(
                    503, "the runtime is still starting; try again shortly"
                )
        return await handler(request)

    async def root(self, request: web.Request) -> web.Response:
        """A tiny landing answer so a browser pointed at the port sees something."""
        return json_response(
            200,
            {
                "runtime": "duralane-embedded",
                "functions": [
                    entry.describe() for entry in self.runtime.index.functions
                ],
            },
        )

    # Keys

    def _client_secret(self, segment: list[str]) -> bool:
        """The rpc path's secret: this runtime's token, or the peers' one if set."""
        supplied = segment[0] if segment else ""
        secrets_known = [self.runtime.rpc_token, self.runtime.peer_token]
        return any(
            known and hmac.compare_digest(supplied.encode(), known.encode())
            for known in secrets_known
        )

    def _authorized(self, request: web.Request, level: str) -> bool:
        """Function and admin levels need the key once the runtime leaves loopback."""
        if level == "anonymous" or is_loopback(self.runtime.host):
            return True
        key = self.runtime.api_key
        supplied = request.query.get("code") or request.headers.get("x-functions-key")
        return bool(key) and supplied == key

    # HTTP triggers

    async def http_trigger(self, request: web.Request) -> web.StreamResponse:
        """Route /api/... to the app's HTTP-triggered function."""
        path = request.match_info["tail"]
        allowed: set[str] = set()
        for route in self.routes:
            match = route.pattern.match(path)
            if not match:
                continue
            if route.methods and request.method not in route.methods:
                allowed |= route.methods
                continue
            level = str(getattr(route.entry.trigger.auth_level, "value", "function"))
            if not self._authorized(request, level.lower()):
                return error_response(401, "this route needs the API key (code=...)")
            params = {k: v for k, v in match.groupdict().items() if v is not None}
            return await self._invoke_http(route.entry, request, params)
        if allowed:
            return error_response(
                405, f"method {request.method} not allowed", allowed=sorted(allowed)
            )
        return error_response(404, f"no function serves /api/{path}")

    async def _invoke_http(
        self, entry: FunctionEntry, request: web.Request, params: dict[str, str]
    ) -> web.StreamResponse:
        body = await request.read()
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            params=dict(request.query),
            route_params=params,
            body=body,
        )
        arguments: dict[str, Any] = {entry.trigger_param: http_request}
        arguments.update(self.runtime.client_arguments(entry))
        invocation_id = random_hex()
        started = time.perf_counter()
        logger.info("Executing %s (invocation %s)", entry.name, invocation_id)
        try:
            result = await self.runtime.invoke(entry, arguments)
        except Exception:
            logger.exception(
                "Executed %s (invocation %s): Failed", entry.name, invocation_id
            )
            return error_response(
                500,
                f"function {entry.name} failed; see the runtime log",
                invocationId=invocation_id,
            )
        logger.info(
            "Executed %s (invocation %s): Succeeded in %.1f ms",
            entry.name,
            invocation_id,
            (time.perf_counter() - started) * 1000,
        )
        return to_aiohttp_response(result)

    # Durable Functions HTTP API

    async def durable_api(self, request: web.Request) -> web.StreamResponse:
        """Serve the Durable Functions management API."""
        parts = [p for p in request.match_info["tail"].split("/") if p]
        if parts[:1] == [RPC_SEGMENT] and self._client_secret(parts[1:2]):
            # A durable client, which has no way to send a key: this runtime's
            # own (the rpc token) or a peer runtime's (from the shared API key).
            parts = parts[2:]
        elif not self._authorized(request, "admin"):
            return error_response(
                401, "the management API needs the API key (code=...)"
            )
        hub = request.query.get("taskHub") or self.runtime.default_hub
        if parts[:1] == ["taskhubs"] and len(parts) > 1:
            # Clients bound to another hub reach it through their rpcBaseUrl path.
            hub, parts = parts[1], parts[2:]
        worker = self.runtime.workers.get(hub)
        if worker is None:
            peer = self.runtime.peers.get(hub)
            if peer is None:
                return error_response(404, f"task hub '{hub}' is not served here")
            if FORWARDED_HEADER in request.headers:
                # Passed on once already: two runtimes naming each other for
                # one hub would pass it back and forth for good.
                return error_response(
                    404,
                    f"task hub '{hub}' runs in neither this runtime nor the one "
                    "that passed the call on; each names the other as its peer",
                )
            return await self._forward(request, peer, hub, parts)
        try:
            return await self._durable_route(request, parts, hub)
        except ValueError as exc:
            return error_response(400, str(exc))

    async def _forward(
        self, request: web.Request, peer: str, hub: str, parts: list[str]
    ) -> web.StreamResponse:
        """Pass a call for a peer's hub on to the peer, and its answer back.

        In Azure every app sharing the storage can manage every hub in it, and
        the SDK's check-status URLs take the calling request's origin: they
        point here even when a peer runs the instance.
        """
        path = "/".join(quote(part, safe="") for part in parts)
        url = f"{peer}{WEBHOOK_PREFIX}/taskhubs/{quote(hub, safe='')}/{path}"
        headers = {FORWARDED_HEADER: self.runtime.base_url}
        if self.runtime.api_key:
            headers["x-functions-key"] = self.runtime.api_key
        if "Content-Type" in request.headers:
            headers["Content-Type"] = request.headers["Content-Type"]
        try:
            async with self._peer_session().request(
                request.method,
                url,
                params=request.query,
                data=await request.read(),
                headers=headers,
            ) as reply:
                body = await reply.read()
                passed = {
                    name: reply.headers[name]
                    for name in ("Content-Type", "Location", "Retry-After")
                    if name in reply.headers
                }
                return web.Response(status=reply.status, body=body, headers=passed)
        except (aiohttp.ClientError, TimeoutError) as exc:
            logger.warning("task hub %s: peer %s did not answer: %r", hub, peer, exc)
            return error_response(
                502,
                f"task hub '{hub}' runs in the runtime at {peer}, which did "
                f"not answer ({type(exc).__name__})",
            )

    def _peer_session(self) -> aiohttp.ClientSession:
        """One pooled client for calls passed on to peers, made on first use."""
        if self._peers_client is None:
            self._peers_client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=PEER_CALL_SECONDS, sock_connect=PEER_CONNECT_SECONDS
                )
            )
        return self._peers_client

    async def close(self) -> None:
        """Close the client for peers, if one was made."""
        if self._peers_client is not None:
            await self._peers_client.close()
            self._peers_client = None

    async def _durable_route(
        self, request: web.Request, parts: list[str], hub: str
    ) -> web.StreamResponse:
        method = request.method
        if parts[:1] == ["orchestrators"] and len(parts) in (2, 3) and method == "POST":
            return await self._start(
                request, hub, parts[1], parts[2] if len(parts) == 3 else None
            )
        if parts[:1] != ["instances"]:
            return error_response(404, "unknown management route")
        if len(parts) == 1:
            if method == "GET":
                return self._query(request, hub)
            if method == "DELETE":
                return self._purge_by_filter(request, hub)
        instance_id = parts[1] if len(parts) > 1 else ""
        if len(parts) == 2:
            if method == "GET":
                return self._status(request, hub, instance_id)
            if method == "DELETE":
                return self._purge_one(hub, instance_id)
        if len(parts) == 4 and parts[2] == "raiseEvent" and method == "POST":
            return await self._raise_event(request, hub, instance_id, parts[3])
        if len(parts) == 3 and method == "POST":
            operation = parts[2]
            if operation in ("terminate", "suspend", "resume"):
                return self._control(request, hub, instance_id, operation)
        return error_response(404, "unknown management route")

    async def _start(
        self, request: web.Request, hub: str, name: str, instance_id: str | None
    ) -> web.Response:
        origin = f"{request.scheme}://{request.host}"
        status, body = await self.start_orchestration(
            hub, name, instance_id, await request.text(), origin
        )
        if status != 202:
            return json_response(status, body)
        headers = {"Location": body["statusQueryGetUri"], "Retry-After": "10"}
        return json_response(status, body, headers=headers)

    async def start_orchestration(
        self,
        hub: str,
        name: str,
        instance_id: str | None,
        text: str,
        origin: str,
    ) -> tuple[int, dict[str, Any]]:
        """Start an instance as the extension's start route does: status and body."""
        worker = self.runtime.workers[hub]
        if name not in self.runtime.index.orchestrators:
            return 400, {
                "Message": "One or more of the arguments submitted is incorrect",
                "ExceptionMessage": f"The function '{name}' doesn't exist, is "
                "disabled, or is not an orchestrator function.",
            }
        input_text: str | None = None
        if text:
            try:
                # The client sends its JSON input text JSON-encoded once more.
                decoded = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"request body is not JSON: {exc}") from exc
            input_text = decoded if isinstance(decoded, str) else json.dumps(decoded)
        # A less urgent hub's start lets an urgent one go first.
        await worker.urgency.step_aside(worker.priority)
        try:
            # Awaited on the loop, not in a thread: a start only waits for the
            # store's writer, and a thread hop per start costs every lane.
            instance = await worker.start_on_loop(name, instance_id, input_text)
        except InstanceExists as exc:
            return 409, {"Message": str(exc), "ExceptionMessage": str(exc)}
        return 202, management_payload(
            origin, hub, instance.instance_id, self.runtime.api_key
        )

    def _status(self, request: web.Request, hub: str, instance_id: str) -> web.Response:
        store = self.runtime.hub_store
        instance = store.get_instance(hub, instance_id)
        if instance is None:
            return error_response(404, f"no instance with id '{instance_id}'")
        show_input = request.query.get("showInput", "true").lower() != "false"
        body = status_payload(instance, show_input)
        if request.query.get("showHistory", "").lower() == "true":
            body["historyEvents"] = store.history(hub, instance_id)
        if instance.status in ("Running", "Pending", "ContinuedAsNew", "Suspended"):
            return json_response(
                202, body, headers={"Location": str(request.url), "Retry-After": "5"}
            )
        failed = instance.status == "Failed"
        wants_500 = request.query.get("returnInternalServerErrorOnFailure") == "true"
        return json_response(500 if failed and wants_500 else 200, body)

    def _query(self, request: web.Request, hub: str) -> web.Response:
        query = request.query
        statuses = [s for s in query.get("runtimeStatus", "").split(",") if s]
        top = int(query.get("top", "100"))
        if top < 1 or top > 1000:
            raise ValueError("top must be between 1 and 1000")
        page = self.runtime.hub_store.query_instances(
            hub,
            statuses=statuses,
            created_from=_parse_time(query.get("createdTimeFrom"), "createdTimeFrom"),
            created_to=_parse_time(query.get("createdTimeTo"), "createdTimeTo"),
            prefix=query.get("instanceIdPrefix"),
            top=top,
            continuation=request.headers.get("x-ms-continuation-token"),
        )
        show_input = query.get("showInput", "false").lower() == "true"
        headers = {}
        if page.continuation:
            headers["x-ms-continuation-token"] = page.continuation
        return json_response(
            200, [status_payload(i, show_input) for i in page.instances], headers
        )

    def _purge_one(self, hub: str, instance_id: str) -> web.Response:
        store = self.runtime.hub_store
        instance = store.get_instance(hub, instance_id)
        if instance is None:
            return error_response(404, f"no instance with id '{instance_id}'")
        if instance.status not in TERMINAL_STATUSES:
            return error_response(
                409,
                f"instance '{instance_id}' is {instance.status}; terminate it first",
            )
        return json_response(200, {"instancesDeleted": store.purge(hub, [instance_id])})

    def _purge_by_filter(self, request: web.Request, hub: str) -> web.Response:
        created_from = _parse_time(
            request.query.get("createdTimeFrom"), "createdTimeFrom"
        )
        if created_from is None:
            raise ValueError("Please provide value for 'createdTimeFrom' parameter.")
        statuses = [
            s
            for s in request.query.get("runtimeStatus", "").split(",")
            if s in TERMINAL_STATUSES
        ] or sorted(TERMINAL_STATUSES)
        store = self.runtime.hub_store
        ids: list[str] = []
        token = None
        while True:
            page = store.query_instances(
                hub,
                statuses=statuses,
                created_from=created_from,
                created_to=_parse_time(
                    request.query.get("createdTimeTo"), "createdTimeTo"
                ),
                top=1000,
                continuation=token,
            )
            ids.extend(i.instance_id for i in page.instances)
            token = page.continuation
            if not token:
                break
        deleted = store.purge(hub, ids)
        if not deleted:
            return error_response(404, "no finished instance matches")
        return json_response(200, {"instancesDeleted": deleted})

    def _refuse_unless_live(self, hub: str, instance_id: str) -> web.Response | None:
        """404 for an unknown instance, 410 for a finished one, else None."""
        instance = self.runtime.hub_store.get_instance(hub, instance_id)
        if instance is None:
            return error_response(404, f"no instance with id '{instance_id}'")
        if instance.status in TERMINAL_STATUSES:
            return error_response(410, f"instance '{instance_id}' is {instance.status}")
        return None

    async def _raise_event(
        self, request: web.Request, hub: str, instance_id: str, name: str
    ) -> web.Response:
        refusal = self._refuse_unless_live(hub, instance_id)
        if refusal is not None:
            return refusal
        text = await request.text()
        if text:
            try:
                json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"event data is not JSON: {exc}") from exc
        worker = self.runtime.workers[hub]
        await asyncio.to_thread(
            worker.send_control,
            instance_id,
            EventType.EVENT_RAISED,
            Name=name,
            Input=text or None,
        )
        return json_response(202, {})

    def _control(
        self, request: web.Request, hub: str, instance_id: str, operation: str
    ) -> web.Response:
        refusal = self._refuse_unless_live(hub, instance_id)
        if refusal is not None:
            return refusal
        kind = {
            "terminate": EventType.EXECUTION_TERMINATED,
            "suspend": EventType.EXECUTION_SUSPENDED,
            "resume": EventType.EXECUTION_RESUMED,
        }[operation]
        reason = request.query.get("reason", "")
        self.runtime.workers[hub].send_control(
            instance_id, kind, Input=json.dumps(reason), Reason=reason
        )
        return json_response(202, {})

    # Local queues

    async def queue_api(self, request: web.Request) -> web.StreamResponse:
        """Send to, peek and read dead letters of the embedded Service Bus queues."""
        if not self._authorized(request, "admin"):
            return error_response(401, "the queue API needs the API key (code=...)")
        parts = [p for p in request.match_info["tail"].split("/") if p]
        queues = self.runtime.queues
        try:
            if not parts and request.method == "GET":
                names = queues.queue_names()
                return json_response(
                    200, [{"queue": n, **vars(queues.queue_stats(n))} for n in names]
                )
            if len(parts) == 2 and parts[1] == "messages" and request.method == "POST":
                return await self._send(request, parts[0])
            if len(parts) == 2 and parts[1] == "messages" and request.method == "GET":
                count = _int_query(request, "count", 10, 1, 1000)
                found = queues.peek(parts[0], count)
                return json_response(200, [message_payload(m) for m in found])
            if (
                len(parts) == 2
                and parts[1] == "deadletters"
                and request.method == "GET"
            ):
                count = _int_query(request, "count", 10, 1, 1000)
                found = queues.dead_letters(parts[0], count)
                return json_response(200, [message_payload(m) for m in found])
        except QueueNotFound as exc:
            return error_response(404, str(exc))
        except MessageNotFound as exc:
            return error_response(404, str(exc))
        except (ServiceBusQueueError, TypeError) as exc:
            return error_response(400, str(exc))
        return error_response(404, "unknown queue route")

    async def _send(self, request: web.Request, queue: str) -> web.Response:
        body = await request.read()
        headers = request.headers
        properties: dict[str, Any] = {}
        if "x-application-properties" in headers:
            try:
                properties = json.loads(headers["x-application-properties"])
            except json.JSONDecodeError as exc:
                raise ServiceBusQueueError(
                    f"x-application-properties is not a JSON object: {exc}"
                ) from exc
            if not isinstance(properties, dict):
                raise ServiceBusQueueError(
                    "x-application-properties must be a JSON object, not "
                    f"{type(properties).__name__}"
                )
        try:
            scheduled = _parse_time(
                headers.get("x-scheduled-enqueue-time"), "x-scheduled-enqueue-time"
            )
        except ValueError as exc:
            raise ServiceBusQueueError(str(exc)) from exc
        result = self.runtime.queues.send(
            queue,
            body,
            message_id=headers.get("x-message-id"),
            content_type=headers.get("Content-Type"),
            application_properties=properties or None,
            scheduled_enqueue_time=(
                datetime.fromtimestamp(scheduled, UTC)
                if scheduled is not None
                else None
            ),
        )
        self.runtime.wake_queue(queue)
        return json_response(
            201,
            {
                "queue": queue,
                "messageId": result.message_id,
                "sequenceNumber": result.sequence_number,
                "duplicate": result.duplicate,
            },
        )


def status_payload(instance: Instance, show_input: bool = True) -> dict[str, Any]:
    """The status JSON the real extension returns for an instance."""
    body: dict[str, Any] = {
        "name": instance.name,
        "instanceId": instance.instance_id,
        "runtimeStatus": instance.status,
        "input": _loads(instance.input) if show_input else None,
        "customStatus": _loads(instance.custom_status),
        "output": _loads(instance.output),
        "createdTime": _iso(instance.created_at),
        "lastUpdatedTime": _iso(instance.updated_at),
    }
    return body


def message_payload(message: QueueMessage) -> dict[str, Any]:
    """A queue message as JSON, with its body as text when it is UTF-8."""
    try:
        body: str = message.body.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        body = base64.b64encode(message.body).decode()
        encoding = "base64"
    payload = {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in vars(message).items()
        if key not in ("body", "time_to_live")
    }
    payload["body"] = body
    payload["bodyEncoding"] = encoding
    return payload


def to_aiohttp_response(result: Any) -> web.StreamResponse:
    """Turn what an HTTP function returned into an aiohttp response."""
    if result is None:
        return web.Response(status=204)
    if isinstance(result, func.HttpResponse):
        headers = {
            k: v for k, v in result.headers.items() if k.lower() != "content-length"
        }
        mimetype = result.mimetype
        if "Content-Type" not in headers and "content-type" not in headers and mimetype:
            charset = result.charset or "utf-8"
            headers["Content-Type"] = (
                f"{mimetype}; charset={charset}"
                if mimetype.startswith("text") or mimetype == "application/json"
                else mimetype
            )
        return web.Response(
            status=result.status_code, body=result.get_body(), headers=headers
        )
    if isinstance(result, str):
        return web.Response(status=200, text=result)
    return json_response(200, result)


def management_payload(
    base: str, hub: str, instance_id: str, key: str
) -> dict[str, str]:
    """The instance management URLs, shaped like the real extension's."""
    prefix = f"{base}{WEBHOOK_PREFIX}/instances/{quote(instance_id, safe='')}"
    suffix = f"taskHub={quote(hub)}&connection=Storage"
    if key:
        suffix += f"&code={quote(key)}"
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{prefix}?{suffix}",
        "sendEventPostUri": f"{prefix}/raiseEvent/{{eventName}}?{suffix}",
        "terminatePostUri": f"{prefix}/terminate?reason={{text}}&{suffix}",
        "rewindPostUri": f"{prefix}/rewind?reason={{text}}&{suffix}",
        "purgeHistoryDeleteUri": f"{prefix}?{suffix}",
        "restartPostUri": f"{prefix}/restart?{suffix}",
        "suspendPostUri": f"{prefix}/suspend?reason={{text}}&{suffix}",
        "resumePostUri": f"{prefix}/resume?reason={{text}}&{suffix}",
    }


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str | None, name: str) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{name}: '{text}' is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _int_query(
    request: web.Request, name: str, default: int, low: int, high: int
) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError as exc:
        raise ServiceBusQueueError(f"{name} must be a whole number") from exc
    if not low <= value <= high:
        raise ServiceBusQueueError(f"{name} must be between {low} and {high}")
    return value
