"""Names of the log events and attributes Duralane emits, shared with queries/."""

# Each event is one log record whose message starts with its name, and whose
# `extra` carries the attributes below. Application Insights stores the name in
# `message` and the attributes in `customDimensions`, where the Kusto queries
# under queries/ read them; a test checks that every name a query uses is here.

JOB_SUBMITTED = "duralane.job.submitted"
JOB_STARTED = "duralane.job.started"
JOB_ATTEMPT_FAILED = "duralane.job.attempt_failed"
JOB_RETRY_SCHEDULED = "duralane.job.retry_scheduled"
JOB_SUCCEEDED = "duralane.job.succeeded"
JOB_DEAD_LETTERED = "duralane.job.dead_lettered"
JOB_CANCELLED = "duralane.job.cancelled"
SCHEDULE_FIRED = "duralane.schedule.fired"
DISPATCHER_LEASE_ACQUIRED = "duralane.dispatcher.lease_acquired"
DISPATCHER_LEASE_TAKEN_OVER = "duralane.dispatcher.lease_taken_over"
DISPATCHER_LEASE_LOST = "duralane.dispatcher.lease_lost"
HEALTHCHECK_RESULT = "duralane.healthcheck.result"
HEALTHCHECK_FAILING = "duralane.healthcheck.failing"
QUEUE_MESSAGE_DEAD_LETTERED = "duralane.queue.dead_lettered"
FUNCTION_FAILED = "duralane.function.failed"

# Attribute keys carried in `extra` (customDimensions in Application Insights).
ATTR_JOB_ID = "jobId"
ATTR_INSTANCE_ID = "instanceId"
ATTR_LANE = "lane"
ATTR_KIND = "kind"
ATTR_ATTEMPT = "attempt"
ATTR_START_LAG_MS = "startLagMs"
ATTR_DURATION_MS = "durationMs"
ATTR_REASON = "reason"
ATTR_SCHEDULE_ID = "scheduleId"
ATTR_FIRE_LAG_MS = "fireLagMs"
ATTR_ENDPOINT = "endpoint"
ATTR_STATUS_CODE = "statusCode"
ATTR_LATENCY_MS = "latencyMs"
ATTR_CONSECUTIVE_FAILURES = "consecutiveFailures"
ATTR_QUEUE = "queue"
ATTR_FUNCTION = "function"
