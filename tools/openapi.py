#!/usr/bin/env python3
"""Writes public/openapi.json, the API's OpenAPI 3.1 document: python3 tools/openapi.py > public/openapi.json
Tests check it with openapi-spec-validator and against the router's routes.
Behind: public/openapi.json also documents 421/429 answers and /login, /logout (added there by
hand); bring them here before regenerating, or new paths are added to the JSON as well."""
import json
err = {"$ref": "#/components/responses/Error"}
def errors(*codes):
    return {str(c): err for c in codes}
def ok(status, schema, desc="OK", ctype="application/json"):
    return {str(status): {"description": desc, "content": {ctype: {"schema": schema}}}}
ref = lambda n: {"$ref": f"#/components/schemas/{n}"}
runid = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
svc = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
tgt = {"name": "target", "in": "path", "required": True, "schema": {"type": "string"}}
bearer = [{"bearer": []}]
json_body = lambda schema: {"required": True, "content": {"application/json": {"schema": schema}}}
def op(summary, responses, **kw):
    o = {"summary": summary, "responses": responses}
    o.update(kw)
    return o
paths = {
 "/api/v1/deploys": {"post": op("Queue a deploy", {**ok(202, ref("Run"), "Queued (or replayed for the same Idempotency-Key)"), **errors(400, 401, 403, 404, 413, 422, 423, 429, 503)},
     security=bearer, parameters=[{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
     requestBody=json_body({"type": "object", "additionalProperties": False, "required": ["service", "version"], "properties": {
        "service": {"type": "string"}, "version": {"type": "string", "pattern": "^[A-Za-z0-9._/+][A-Za-z0-9._/+-]{0,127}$"},
        "reason": {"type": "string", "maxLength": 1000}, "wait_for_lock": {"type": "boolean"}, "requested_by": {"type": "string", "maxLength": 100}}}))},
 "/api/v1/runs": {"get": op("Runs, newest first", {**ok(200, {"type": "object", "required": ["runs", "next_cursor"], "properties": {"runs": {"type": "array", "items": ref("Run")}, "next_cursor": {"type": ["string", "null"]}}}), **errors(400, 401, 403)},
     parameters=[{"name": "service", "in": "query", "schema": {"type": "string"}}, {"name": "status", "in": "query", "schema": ref("RunStatus")},
                 {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}, {"name": "cursor", "in": "query", "schema": {"type": "string"}}])},
 "/api/v1/runs/{id}": {"get": op("A run with its steps", {**ok(200, ref("Run")), **errors(400, 401, 403, 404)}, parameters=[runid])},
 "/api/v1/runs/{id}/logs": {"get": op("A run's log; with Accept: text/event-stream, a live stream (id: SEQ, Last-Event-ID resumes)",
     {"200": {"description": "Lines, or a Server-Sent Events stream", "content": {
        "application/json": {"schema": {"type": "object", "required": ["run_id", "status", "lines", "next_after"], "properties": {"run_id": {"type": "integer"}, "status": ref("RunStatus"), "lines": {"type": "array", "items": ref("LogLine")}, "next_after": {"type": "integer"}}}},
        "text/event-stream": {"schema": {"type": "string"}}}}, **errors(400, 401, 403, 404)},
     parameters=[runid, {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 5000}},
                 {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}])},
 "/api/v1/runs/{id}/cancel": {"post": op("Cancel a run", {**ok(202, ref("Run")), **errors(400, 401, 403, 404, 409, 429, 503)}, parameters=[runid], security=bearer)},
 "/api/v1/runs/{id}/promote": {"post": op("End a running run's canary bake now (409 when the service has no canary or the run is not running)", {**ok(202, ref("Run")), **errors(400, 401, 403, 404, 409, 429, 503)}, parameters=[runid], security=bearer)},
 "/api/v1/services/{name}/rollback": {"post": op("Queue a deploy of the last good version before the current one (409 when there is none)", {**ok(202, ref("Run")), **errors(400, 401, 403, 404, 409, 413, 422, 423, 429, 503)}, parameters=[svc], security=bearer,
     requestBody={"required": False, "content": {"application/json": {"schema": {"type": "object", "properties": {"reason": {"type": "string", "maxLength": 1000}, "wait_for_lock": {"type": "boolean"}}, "additionalProperties": False}}}})},
 "/api/v1/runs/{id}/deliveries": {"get": op("Where the run's notifications went", {**ok(200, {"type": "object", "properties": {"run_id": {"type": "integer"}, "deliveries": {"type": "array", "items": ref("Delivery")}}}), **errors(400, 401, 403, 404)}, parameters=[runid])},
 "/api/v1/services": {"get": op("Services, their locks, running runs and targets", {**ok(200, {"type": "object", "required": ["services"], "properties": {"services": {"type": "array", "items": ref("Service")}}}), **errors(401, 403)})},
 "/api/v1/services/{name}/plan": {"get": op("How long the next roll will take, what bounds it and what each change would save (the target group's settings, the plan, the last runs)",
     {**ok(200, ref("Plan")), **errors(401, 403, 404, 502, 503)}, parameters=[svc])},
 "/api/v1/services/{name}/lock": {
     "post": op("Lock a service", {**ok(200, ref("Lock")), **errors(400, 401, 403, 404, 422, 429, 503)}, parameters=[svc], security=bearer,
        requestBody=json_body({"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 1000}, "expires_in": {"type": ["string", "number"]}}})),
     "delete": op("Unlock a service", {**ok(200, {"type": "object", "properties": {"unlocked": ref("Lock"), "unlocked_by": {"type": "string"}}}), **errors(401, 403, 404, 429, 503)}, parameters=[svc], security=bearer)},
 "/api/v1/services/{name}/targets/{target}/restore": {"post": op("Put a left-out target back (no hooks)", {**ok(202, ref("Run")), **errors(401, 403, 404, 409, 429, 503)}, parameters=[svc, tgt], security=bearer)},
 "/api/v1/services/{name}/targets/{target}/forget": {"post": op("Forget a left-out target", {**ok(200, {"type": "object", "properties": {"forgotten": ref("LeftOut"), "forgotten_by": {"type": "string"}}}), **errors(401, 403, 404, 409, 429, 503)}, parameters=[svc, tgt], security=bearer)},
}
for door, desc in [("github", "GitHub webhook (X-Hub-Signature-256)"), ("gitlab", "GitLab webhook (X-Gitlab-Token)"), ("generic", "Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)")]:
    paths[f"/api/v1/hooks/{door}"] = {"post": op(desc, {**ok(200, ref("WebhookAnswer"), "Acknowledged; nothing (more) queued"), **ok(202, ref("WebhookAnswer"), "Queued"), **errors(400, 401, 404, 413, 422, 423, 503)},
        requestBody={"required": True, "content": {"application/json": {"schema": {"type": "object"}}}})}
paths["/api/v1/hooks/slack"] = {"post": op("Slack slash command /deploy (v0 signature)", {**ok(200, {"type": "object", "properties": {"response_type": {"type": "string", "enum": ["ephemeral", "in_channel"]}, "text": {"type": "string"}}}), **errors(401, 404, 413, 503)},
        requestBody={"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"text": {"type": "string"}, "user_id": {"type": "string"}, "user_name": {"type": "string"}, "response_url": {"type": "string"}}}}}})}
paths["/healthz"] = {"get": op("Liveness and whether the database takes writes", {**ok(200, {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok", "degraded"]}, "database": {"type": "string"}, "error": {"type": "string"}, "since": {"type": "string"}}}), **ok(503, {"type": "object"}, "Shutting down")})}
paths["/api/v1/healthz"] = paths["/healthz"]
paths["/metrics"] = {"get": op("Prometheus text", {**ok(200, {"type": "string"}, "Metrics", "text/plain"), **errors(401, 403)})}
paths["/api/v1/events"] = {"get": op("Every run, step and target-state change as Server-Sent Events (id: SEQ; event: run.KIND, step.started|succeeded|failed, target.state; data: {seq, run_id, service, event, target_id, phase, detail, at}); Last-Event-ID resumes",
    {"200": {"description": "A Server-Sent Events stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}, **errors(400, 401, 403)},
    parameters=[{"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0}}, {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}])}
paths["/status.txt"] = {"get": op("The state as a plain-text table", {**ok(200, {"type": "string"}, "Text", "text/plain"), **errors(401, 403)})}
paths["/runs/{id}"] = {"get": op("A run's page: facts, each target's steps, the log (text with Accept: text/plain)", {**ok(200, {"type": "string"}, "The run page", "text/html"), **errors(401, 403, 404)}, parameters=[runid])}
paths["/openapi.json"] = {"get": op("This document", ok(200, {"type": "object"}))}
paths["/"] = {"get": op("The status page (HTML, readable without JavaScript)", {**ok(200, {"type": "string"}, "The page", "text/html"), **errors(401, 403)})}
ts = {"type": "string", "format": "date-time"}
nts = {"type": ["string", "null"], "format": "date-time"}
nstr = {"type": ["string", "null"]}
schemas = {
 "RunStatus": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled", "superseded"]},
 "Phase": {"type": "string", "enum": ["prepare", "drain", "deploy", "verify", "restore"]},
 "Step": {"type": "object", "required": ["id", "target_id", "target_port", "phase", "status", "started_at", "finished_at", "error"], "properties": {
    "id": {"type": "integer"}, "target_id": {"type": "string"}, "target_port": {"type": "integer"}, "phase": ref("Phase"),
    "status": {"type": "string", "enum": ["running", "succeeded", "failed"]}, "started_at": ts, "finished_at": nts, "error": nstr}},
 "Run": {"type": "object", "required": ["id", "service", "version", "status", "created_at", "started_at", "finished_at", "error", "steps"], "properties": {
    "id": {"type": "integer"}, "service": {"type": "string"}, "version": {"type": "string"}, "reason": nstr, "requested_by": {"type": "string"},
    "status": ref("RunStatus"), "created_at": ts, "started_at": nts, "finished_at": nts, "error": nstr, "cancel_requested": {"type": "boolean"},
    "kind": {"type": "string", "enum": ["deploy", "restore"]}, "restore_target": {"type": "string"}, "wait_for_lock": {"type": "boolean"},
    "interruptions": {"type": "integer"}, "rolled_by": {"type": ["string", "null"], "description": "the replica (rollgate --name, default its host name) that claimed the run or took it over last"},
    "current_target": nstr, "steps": {"type": "array", "items": ref("Step")},
    "out_of_service": {"type": "array", "description": "each target the run took out: from its first drain to its last successful restore (until and ms null while still out)",
                       "items": {"type": "object", "required": ["target_id", "target_port", "from", "until", "ms"], "properties": {
                           "target_id": {"type": "string"}, "target_port": {"type": "integer"}, "from": ts, "until": nts,
                           "ms": {"type": ["integer", "null"]}}}},
    "out_of_service_ms": {"type": "integer", "description": "the sum over targets back in service"},
    "rolled_back_to": {"type": ["string", "null"], "description": "the version an automatic rollback (on_failure: rollback) put back, or is putting back while the run still runs"}}},
 "LogLine": {"type": "object", "required": ["seq", "at", "stream", "text"], "properties": {"seq": {"type": "integer"}, "at": ts,
    "stream": {"type": "string", "enum": ["system", "stdout", "stderr"]}, "target_id": nstr, "phase": {"oneOf": [ref("Phase"), {"type": "null"}]}, "text": {"type": "string"}}},
 "Lock": {"type": "object", "required": ["service", "reason", "locked_by", "since", "expires_at"], "properties": {"service": {"type": "string"}, "reason": {"type": "string"},
    "locked_by": {"type": "string"}, "since": ts, "expires_at": nts}},
 "LeftOut": {"type": "object", "required": ["target_id", "port", "run_id", "phase", "reason", "since"], "properties": {"target_id": {"type": "string"}, "port": {"type": "integer"},
    "run_id": {"type": "integer"}, "phase": ref("Phase"), "reason": {"type": "string"}, "since": ts}},
 "Target": {"type": "object", "required": ["id", "port", "state"], "properties": {"id": {"type": "string"}, "port": {"type": "integer"},
    "state": {"type": "string", "description": "the load balancer's state (healthy, draining, ...), left_out, or unknown"}, "reason": nstr,
    "load_balancer_state": nstr, "left_out": {"oneOf": [ref("LeftOut"), {"type": "null"}]}}},
 "Service": {"type": "object", "required": ["name", "last_good_version", "lock", "running", "queued", "targets"], "properties": {
    "name": {"type": "string"}, "target_group": {"type": "string"},
    "target_groups": {"type": "array", "items": {"type": "string"}, "description": "every target group of a service behind several (target_group_arns); target_group is the first"}, "last_good_version": nstr, "last_good_run_id": {"type": ["integer", "null"]},
    "lock": {"oneOf": [ref("Lock"), {"type": "null"}]}, "running": {"type": ["object", "null"]}, "queued": {"type": "array", "items": {"type": "integer"}},
    "left_out": {"type": "integer"}, "targets": {"type": ["array", "null"], "items": ref("Target")},
    "health_check_changed": {"type": "array", "description": "target groups whose health check rollgate tightened for a run (health_check_during_roll) and has not put back yet",
        "items": {"type": "object", "properties": {"target_group": {"type": "string"}, "run_id": {"type": "integer"}, "since": {"type": "string"},
            "original": {"type": "object", "properties": {"interval_s": {"type": "integer"}, "timeout_s": {"type": "integer"}, "healthy_threshold": {"type": "integer"}}}}}}}},
 "Plan": {"type": "object", "required": ["service", "targets", "batch_size", "batches", "out_of_service_per_target_s", "bound_by", "parts", "roll_s", "group", "history", "advice", "summary"], "properties": {
    "service": {"type": "string"}, "targets": {"type": "integer"}, "batch_size": {"type": "integer"}, "batches": {"type": "integer"},
    "out_of_service_per_target_s": {"type": "number"}, "bound_by": {"type": "string", "enum": ["drain", "hooks", "health"]},
    "parts": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string", "enum": ["drain", "hooks", "health"]}, "expected_s": {"type": "number"}, "from": {"type": "string"}}}},
    "drain_idle": {"type": ["object", "null"], "description": "the median share of a drain the app was already idle (fast_drain's check, or fast_drain.measure_only), once 3 drains were measured",
        "properties": {"median_share": {"type": "number", "minimum": 0, "maximum": 1}, "drains": {"type": "integer"}}},
    "prepare_s": {"type": "number"}, "bake_s": {"type": "number"}, "roll_s": {"type": "number"}, "slow_start_s": {"type": ["number", "null"]},
    "group": {"type": "object", "properties": {"deregistration_delay_s": {"type": ["number", "null"]}, "health_check_interval_s": {"type": ["number", "null"]},
        "health_check_timeout_s": {"type": ["number", "null"]}, "healthy_threshold": {"type": ["integer", "null"]}, "slow_start_s": {"type": ["number", "null"]}}},
    "history": {"type": "object", "description": "per phase: p50_s, p90_s, samples over the last 20 succeeded runs",
        "additionalProperties": {"type": "object", "properties": {"p50_s": {"type": "number"}, "p90_s": {"type": "number"}, "samples": {"type": "integer"}}}},
    "advice": {"type": "array", "items": {"type": "object", "properties": {"change": {"type": "string", "enum": ["fast_drain", "health_check_during_roll", "max_unavailable"]},
        "text": {"type": "string"}, "saves_per_target_s": {"type": "number"}, "saves_on_roll_s": {"type": "number"}}}},
    "summary": {"type": "array", "items": {"type": "string"}, "description": "the forecast as rollgate plan prints it"}}},
 "Delivery": {"type": "object", "properties": {"destination": {"type": "string"}, "seq": {"type": "integer"}, "event": {"type": "string"},
    "status": {"type": "string", "enum": ["pending", "delivered", "failed"]}, "attempts": {"type": "integer"}, "last_error": nstr, "delivered_at": nts}},
 "WebhookAnswer": {"type": "object", "properties": {"queued": {"type": "array", "items": ref("Run")}, "already_queued": {"type": "array", "items": {"type": "integer"}},
    "ignored": {"type": "array", "items": {"type": "string"}}, "pong": {"type": "string"}}},
 "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}, "lock": ref("Lock")}},
}
doc = {"openapi": "3.1.0", "info": {"title": "rollgate", "version": "0.7.0", "description": "A deploy control plane: queue deploys, watch them roll one target at a time, read the history."},
       "paths": paths, "components": {"schemas": schemas, "responses": {"Error": {"description": "An error", "content": {"application/json": {"schema": ref("Error")}}}},
       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
print(json.dumps(doc, indent=1, sort_keys=False))
