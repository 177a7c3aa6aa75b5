#include "api/openapi.hpp"
#include "api/internal/service.hpp"

#include <boost/json.hpp>

#include <set>

namespace strowger::api {
namespace {

// Component schemas (JSON Schema 2020-12, as OpenAPI 3.1 has it). Objects allow members not
// listed, so adding a field is not a breaking change; what is listed is checked.
constexpr const char* kSchemas = R"json({
  "Problem": {
    "type": "object", "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
      "type": {"type": "string"}, "title": {"type": "string"},
      "status": {"type": "integer", "minimum": 400, "maximum": 599},
      "detail": {"type": "string"},
      "errors": {"type": "array", "items": {"$ref": "#/components/schemas/FieldError"}},
      "run_id": {"type": "string"}, "run_status": {"$ref": "#/components/schemas/Status"}
    }
  },
  "FieldError": {
    "type": "object", "required": ["field", "message"],
    "properties": {"field": {"type": "string"}, "message": {"type": "string"},
                   "line": {"type": "integer"}, "column": {"type": "integer"}}
  },
  "Status": {"type": "string", "enum": ["pending", "running", "paused", "waiting", "completed",
                                        "failed", "cancelled", "needs_reconciliation"]},
  "Time": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$"},
  "TimeOrNull": {"oneOf": [{"$ref": "#/components/schemas/Time"}, {"type": "null"}]},
  "Object": {"type": "object"},
  "Text": {"type": "string"},
  "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
  "StartRunRequest": {
    "type": "object", "required": ["workflow"],
    "properties": {
      "workflow": {"type": "string", "description": "workflow id or name"},
      "version": {"type": "integer", "minimum": 1},
      "input": {"description": "text, or any JSON value (passed as compact JSON)"},
      "idempotency_key": {"type": "string", "minLength": 1},
      "trigger_source": {"type": "string", "pattern": "^[a-z0-9_.-]{1,64}$"},
      "metadata": {"type": "object"}
    }
  },
  "RunStarted": {
    "type": "object", "required": ["run_id", "status", "workflow_id", "workflow_version", "existing"],
    "properties": {"run_id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"},
                   "workflow_id": {"type": "string"}, "workflow_version": {"type": "integer"},
                   "existing": {"type": "boolean"}}
  },
  "RunState": {
    "type": "object", "required": ["run_id", "status"],
    "properties": {"run_id": {"type": "string"}, "status": {"$ref": "#/components/schemas/Status"},
                   "step": {"type": "string"}}
  },
  "RerunStarted": {
    "type": "object", "required": ["run_id", "rerun_of", "status"],
    "properties": {"run_id": {"type": "string"}, "rerun_of": {"type": "string"},
                   "status": {"$ref": "#/components/schemas/Status"}}
  },
  "RunSummary": {
    "type": "object", "required": ["run_id", "workflow", "status", "created_at", "updated_at", "events"],
    "properties": {"run_id": {"type": "string"}, "workflow": {"type": "string"},
                   "status": {"$ref": "#/components/schemas/Status"},
                   "created_at": {"$ref": "#/components/schemas/Time"},
                   "updated_at": {"$ref": "#/components/schemas/Time"},
                   "events": {"type": "integer", "minimum": 1}}
  },
  "RunPage": {
    "type": "object", "required": ["runs", "next_cursor"],
    "properties": {"runs": {"type": "array", "items": {"$ref": "#/components/schemas/RunSummary"}},
                   "next_cursor": {"type": ["string", "null"]}}
  },
  "StepResult": {
    "type": "object",
    "required": ["step_name", "prompt", "output", "input_tokens", "output_tokens", "duration_ms", "attempts"],
    "properties": {"step_name": {"type": "string"}, "agent_name": {"type": "string"},
                   "agent_id": {"type": "string"}, "prompt": {"type": "string"},
                   "output": {"type": "string"}, "input_tokens": {"type": "integer"},
                   "output_tokens": {"type": "integer"}, "duration_ms": {"type": "integer"},
                   "attempts": {"type": "integer"}}
  },
  "NodeRun": {
    "type": "object", "required": ["status", "attempts"],
    "properties": {"id": {"type": "string"}, "status": {"type": "string",
                   "enum": ["pending", "running", "retry_waiting", "completed", "skipped", "failed",
                            "cancelled", "waiting"]},
                   "attempts": {"type": "integer"}, "iterations": {"type": "integer"},
                   "error": {"type": "string"}, "skip_reason": {"type": "string"}}
  },
  "OpenTask": {
    "type": "object", "required": ["task_id", "kind", "title", "created_at"],
    "properties": {"task_id": {"type": "string"}, "kind": {"type": "string"},
                   "title": {"type": "string"}, "step": {"type": "string"},
                   "tool": {"type": "string"}, "arguments": {"type": "string"},
                   "created_at": {"$ref": "#/components/schemas/Time"}}
  },
  "RunRecord": {
    "type": "object",
    "required": ["run_id", "workflow", "status", "definition_sha256", "input", "output", "error",
                 "created_at", "started_at", "completed_at", "duration_ms", "input_tokens",
                 "output_tokens", "cost_usd", "model_calls", "events", "step_results", "open_tasks"],
    "properties": {
      "run_id": {"type": "string"}, "workflow": {"type": "string"},
      "status": {"$ref": "#/components/schemas/Status"},
      "definition_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
      "input": {"type": "string"}, "output": {"type": ["string", "null"]},
      "error": {"type": ["string", "null"]}, "idempotency_key": {"type": "string"},
      "rerun_of": {"type": "string"},
      "created_at": {"$ref": "#/components/schemas/TimeOrNull"},
      "started_at": {"$ref": "#/components/schemas/TimeOrNull"},
      "completed_at": {"$ref": "#/components/schemas/TimeOrNull"},
      "duration_ms": {"type": "integer"}, "input_tokens": {"type": "integer"},
      "output_tokens": {"type": "integer"}, "cost_usd": {"type": "string"},
      "model_calls": {"type": "integer"}, "events": {"type": "integer"},
      "models": {"type": "array", "items": {"type": "string"}},
      "step_results": {"type": "array", "items": {"$ref": "#/components/schemas/StepResult"}},
      "nodes": {"type": "array", "items": {"$ref": "#/components/schemas/NodeRun"}},
      "open_tasks": {"type": "array", "items": {"$ref": "#/components/schemas/OpenTask"}},
      "workflow_id": {"type": "string"}, "workflow_version": {"type": "integer"},
      "trigger_source": {"type": "string"}, "metadata": {"type": "object"}
    }
  },
  "LedgerEvent": {
    "type": "object", "description": "a canonical ledger line (docs/formats/ledger_event_v1.md)",
    "required": ["v", "seq", "run_id", "time", "type", "data", "prev_hash", "hash"],
    "properties": {"v": {"const": 1}, "seq": {"type": "integer", "minimum": 1},
                   "run_id": {"type": "string"}, "time": {"$ref": "#/components/schemas/Time"},
                   "type": {"type": "string"}, "node": {"type": "string"},
                   "attempt": {"type": "integer"}, "data": {"type": "object"},
                   "prev_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                   "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}
  },
  "RunStatus": {
    "type": "object", "description": "CMDC's status: the run, its nodes and its ledger",
    "required": ["run", "node_runs", "events"],
    "properties": {"run": {"$ref": "#/components/schemas/RunRecord"},
                   "node_runs": {"type": "array", "items": {"$ref": "#/components/schemas/NodeRun"}},
                   "events": {"type": "array", "items": {"$ref": "#/components/schemas/LedgerEvent"}}}
  },
  "EventPage": {
    "type": "object", "required": ["events", "next_after"],
    "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/LedgerEvent"}},
                   "next_after": {"type": "integer"}}
  },
  "GlobalEvent": {
    "type": "object", "required": ["id", "run_id", "seq", "time", "type", "data"],
    "properties": {"id": {"type": "integer", "minimum": 1}, "run_id": {"type": "string"},
                   "seq": {"type": "integer"}, "time": {"$ref": "#/components/schemas/Time"},
                   "type": {"type": "string"}, "node": {"type": "string"},
                   "attempt": {"type": "integer"}, "data": {"type": "object"}}
  },
  "GlobalEventPage": {
    "type": "object", "required": ["events", "next_after", "first_id"],
    "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/GlobalEvent"}},
                   "next_after": {"type": "integer"}, "first_id": {"type": "integer"}}
  },
  "ReasonRequest": {"type": "object", "properties": {"reason": {"type": "string"}}},
  "RetryRequest": {"type": "object", "properties": {"step": {"type": "string"}}},
  "ControlResult": {
    "type": "object", "required": ["run_id", "action", "result"],
    "properties": {"run_id": {"type": "string"}, "action": {"enum": ["pause", "cancel"]},
                   "result": {"enum": ["applied", "requested"]}}
  },
  "Task": {
    "type": "object", "required": ["run_id", "workflow", "task_id", "kind", "title", "assignees", "created_at"],
    "properties": {"run_id": {"type": "string"}, "workflow": {"type": "string"},
                   "task_id": {"type": "string"}, "kind": {"type": "string"},
                   "title": {"type": "string"}, "step": {"type": "string"},
                   "tool": {"type": "string"}, "arguments": {"type": "string"},
                   "assignees": {"type": "array", "items": {"type": "string"}},
                   "approval_mode": {"enum": ["single", "quorum"]},
                   "required_count": {"type": "integer"}, "approvals": {"type": "integer"},
                   "created_at": {"$ref": "#/components/schemas/Time"}}
  },
  "TaskList": {"type": "object", "required": ["tasks", "next_cursor"],
               "properties": {"tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
                              "next_cursor": {"type": "string"}}},
  "DecisionRequest": {
    "type": "object", "required": ["action"],
    "properties": {"action": {"enum": ["approve", "reject", "request_changes", "progress"]}, "comment": {"type": "string"},
                   "output": {"type": "string"}, "idempotency_key": {"type": "string"}}
  },
  "Decision": {
    "type": "object", "required": ["run_id", "task_id", "decision", "actor", "status"],
    "properties": {"run_id": {"type": "string"}, "task_id": {"type": "string"},
                   "decision": {"enum": ["approve", "reject", "request_changes", "progress"]}, "actor": {"type": "string"},
                   "status": {"type": "string"}}
  },
  "WorkflowDefinition": {
    "type": "object", "description": "a workflow (docs/formats/workflow.md), as JSON; YAML text is accepted too",
    "required": ["name"], "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                                         "steps": {"type": "array"}, "nodes": {"type": "array"},
                                         "agents": {"type": "object"}}
  },
  "WorkflowCreated": {
    "type": "object", "required": ["workflow_id", "name", "version"],
    "properties": {"workflow_id": {"type": "string"}, "name": {"type": "string"},
                   "version": {"type": "integer", "minimum": 1}}
  },
  "WorkflowSummary": {
    "type": "object",
    "required": ["id", "name", "description", "steps", "created_at", "updated_at", "version", "origin"],
    "properties": {"id": {"type": "string"}, "name": {"type": "string"},
                   "description": {"type": "string"}, "steps": {"type": "integer"},
                   "created_at": {"$ref": "#/components/schemas/Time"},
                   "updated_at": {"$ref": "#/components/schemas/Time"},
                   "version": {"type": "integer", "minimum": 1}, "origin": {"type": "string"}}
  },
  "WorkflowList": {"type": "array", "items": {"$ref": "#/components/schemas/WorkflowSummary"}},
  "WorkflowDetail": {
    "allOf": [{"$ref": "#/components/schemas/WorkflowSummary"},
              {"type": "object", "required": ["definition_sha256", "source_format", "source", "versions"],
               "properties": {"definition_sha256": {"type": "string"},
                              "source_format": {"enum": ["json", "yaml"]},
                              "source": {"type": "string"}, "definition": {"type": "object"},
                              "error": {"type": "string"},
                              "versions": {"type": "array", "items": {"type": "object",
                                "required": ["version", "definition_sha256", "created_at", "actor"]}}}}]
  },
  "WorkflowUpdated": {
    "type": "object", "required": ["workflow_id", "version", "changed"],
    "properties": {"workflow_id": {"type": "string"}, "version": {"type": "integer"},
                   "changed": {"type": "boolean"}}
  },
  "WorkflowRemoved": {
    "type": "object", "required": ["status", "workflow_id"],
    "properties": {"status": {"const": "removed"}, "workflow_id": {"type": "string"}}
  },
  "WorkflowRunRequest": {
    "type": "object", "properties": {"input": {}, "version": {"type": "integer", "minimum": 1}}
  },
  "WorkflowRunResult": {
    "type": "object", "required": ["run_id", "output", "status", "step_results"],
    "properties": {"run_id": {"type": "string"}, "output": {"type": "string"},
                   "status": {"const": "completed"},
                   "step_results": {"type": "array", "items": {"$ref": "#/components/schemas/StepResult"}}}
  },
  "DryRun": {
    "type": "object", "required": ["workflow_id", "version", "valid", "plan", "text"],
    "properties": {"workflow_id": {"type": "string"}, "version": {"type": "integer"},
                   "valid": {"type": "boolean"}, "plan": {"type": "object"},
                   "text": {"type": "string"}}
  },
  "WorkflowRunList": {
    "type": "array",
    "items": {"type": "object",
              "required": ["id", "workflow_name", "state", "steps_completed", "started_at", "completed_at"],
              "properties": {"id": {"type": "string"}, "workflow_name": {"type": "string"},
                             "state": {"$ref": "#/components/schemas/Status"},
                             "steps_completed": {"type": "integer"},
                             "started_at": {"$ref": "#/components/schemas/TimeOrNull"},
                             "completed_at": {"$ref": "#/components/schemas/TimeOrNull"}}}
  },
  "TokenRequest": {
    "type": "object", "required": ["name", "role"],
    "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
                   "role": {"enum": ["viewer", "operator", "approver", "admin"]}}
  },
  "Token": {
    "type": "object", "required": ["name", "role", "created_by", "created_at", "revoked_at", "live"],
    "properties": {"name": {"type": "string"},
                   "role": {"enum": ["viewer", "operator", "approver", "admin"]},
                   "created_by": {"type": "string"},
                   "created_at": {"$ref": "#/components/schemas/Time"},
                   "revoked_at": {"$ref": "#/components/schemas/TimeOrNull"},
                   "live": {"type": "boolean"}}
  },
  "TokenCreated": {
    "allOf": [{"$ref": "#/components/schemas/Token"},
              {"type": "object", "required": ["token"],
               "properties": {"token": {"type": "string", "pattern": "^stg_[A-Za-z0-9_-]{43}$"}}}]
  },
  "TokenList": {"type": "object", "required": ["tokens"],
                "properties": {"tokens": {"type": "array", "items": {"$ref": "#/components/schemas/Token"}}}},
  "TokenRevoked": {
    "type": "object", "required": ["status", "name"],
    "properties": {"status": {"const": "revoked"}, "name": {"type": "string"}}
  },
  "RetentionRequest": {
    "type": "object",
    "properties": {"keep_days": {"type": "integer", "minimum": 0},
                   "keep_count": {"type": "integer", "minimum": 0}}
  },
  "RetentionPolicy": {
    "type": "object", "required": ["workflow", "keep_days", "keep_count"],
    "properties": {"workflow": {"type": "string"}, "keep_days": {"type": "integer", "minimum": 0},
                   "keep_count": {"type": "integer", "minimum": 0}}
  },
  "RetentionList": {"type": "object", "required": ["policies"],
                    "properties": {"policies": {"type": "array",
                                                "items": {"$ref": "#/components/schemas/RetentionPolicy"}}}},
  "RetentionRemoved": {
    "type": "object", "required": ["status", "workflow"],
    "properties": {"status": {"const": "removed"}, "workflow": {"type": "string"}}
  },
  "PruneRequest": {
    "type": "object", "required": ["keep"],
    "properties": {"keep": {"type": "integer", "minimum": 0}, "dry_run": {"type": "boolean"}}
  },
  "PruneResult": {
    "type": "object", "required": ["finished", "deleted", "keep", "dry_run"],
    "properties": {"finished": {"type": "integer"}, "deleted": {"type": "integer"},
                   "keep": {"type": "integer"}, "dry_run": {"type": "boolean"}}
  },
  "AuditVerifyRequest": {
    "type": "object",
    "properties": {"run_ids": {"type": "array", "maxItems": 1000, "items": {"type": "string"}},
                   "all": {"type": "boolean"},
                   "anchors": {"type": "string", "description": "lines of `strowger audit anchor`"},
                   "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                   "cursor": {"type": "string"}}
  },
  "AuditFinding": {
    "type": "object", "required": ["seq", "reason", "detail"],
    "properties": {"seq": {"type": "integer"}, "reason": {"type": "string"},
                   "detail": {"type": "string"}}
  },
  "AuditRun": {
    "type": "object", "required": ["run_id", "result", "description", "finding"],
    "properties": {"run_id": {"type": "string"}, "result": {"enum": ["ok", "broken", "error"]},
                   "description": {"type": "string"}, "events": {"type": "integer"},
                   "signed_checkpoints": {"type": "integer"}, "head_seq": {"type": "integer"},
                   "head": {"type": "string"},
                   "finding": {"oneOf": [{"$ref": "#/components/schemas/AuditFinding"},
                                         {"type": "null"}]}}
  },
  "AuditReport": {
    "type": "object",
    "required": ["ok", "batch_log", "runs", "broken", "missing", "pruned_signed", "next_cursor"],
    "properties": {
      "ok": {"type": "boolean"},
      "batch_log": {"type": "object", "required": ["batches", "ok", "findings"],
                    "properties": {"batches": {"type": "integer"}, "ok": {"type": "boolean"},
                                   "findings": {"type": "array", "items": {"type": "string"}}}},
      "runs": {"type": "array", "items": {"$ref": "#/components/schemas/AuditRun"}},
      "broken": {"type": "integer"},
      "missing": {"type": "array", "items": {
        "type": "object", "required": ["run_id", "description"],
        "properties": {"run_id": {"type": "string"}, "description": {"type": "string"}}}},
      "pruned_signed": {"type": "integer"},
      "next_cursor": {"type": "string"}}
  },
  "AuditAnchorRequest": {
    "type": "object",
    "properties": {"run_ids": {"type": "array", "maxItems": 1000, "items": {"type": "string"}},
                   "all": {"type": "boolean"}}
  },
  "AuditAnchors": {
    "type": "object", "required": ["anchors", "refused"],
    "properties": {"anchors": {"type": "array", "items": {"type": "string"}},
                   "refused": {"type": "array", "items": {
                     "type": "object", "required": ["run_id", "reason"],
                     "properties": {"run_id": {"type": "string"}, "reason": {"type": "string"}}}}}
  }
})json";

json::object Ref(const std::string& schema) {
    json::object ref;
    ref["$ref"] = "#/components/schemas/" + schema;
    return ref;
}

json::object Content(const std::string& content_type, const std::string& schema) {
    json::object media;
    media["schema"] = Ref(schema);
    json::object content;
    content[content_type] = std::move(media);
    return content;
}

json::object ResponseObject(const ResponseDoc& doc) {
    json::object response;
    response["description"] = doc.description;
    if (!doc.schema.empty()) {
        std::string type = doc.schema == "Problem" ? "application/problem+json" : doc.content_type;
        response["content"] = Content(type, doc.schema);
    }
    return response;
}

ResponseDoc ProblemDoc(int status, std::string description) {
    return ResponseDoc{status, std::move(description), "Problem", "application/problem+json"};
}

// Standing agents and cron jobs (docs/formats/agents_cron_state_v1.md).
constexpr const char* kAgentCronSchemas = R"json({
  "Agent": {
    "type": "object", "required": ["name", "model", "session_mode", "max_history_tokens"],
    "properties": {"name": {"type": "string"}, "id": {"type": "string"},
                   "description": {"type": "string"}, "model": {"type": "string"},
                   "tools": {"type": "array", "items": {"type": "string"}},
                   "session_mode": {"enum": ["persistent", "new"]},
                   "max_history_tokens": {"type": "integer"}, "file": {"type": "string"},
                   "cron_jobs": {"type": "integer"}}
  },
  "AgentList": {"type": "array", "items": {"$ref": "#/components/schemas/Agent"}},
  "AgentMessage": {
    "type": "object", "required": ["message"],
    "properties": {"message": {"type": "string", "description": "may start with [SILENT]"},
                   "session_mode": {"enum": ["persistent", "new"]},
                   "channel": {"type": "string"}, "model_override": {"type": "string"},
                   "timeout_secs": {"type": "integer", "minimum": 1}}
  },
  "AgentTurnStarted": {
    "type": "object", "required": ["run_id", "agent", "session_id", "silent", "status"],
    "properties": {"run_id": {"type": "string"}, "agent": {"type": "string"},
                   "session_id": {"type": "string"}, "silent": {"type": "boolean"},
                   "status": {"type": "string"}}
  },
  "AgentReply": {
    "type": "object", "required": ["run_id", "status", "response", "session_id", "silent"],
    "properties": {"run_id": {"type": "string"}, "status": {"const": "completed"},
                   "response": {"type": "string"}, "session_id": {"type": "string"},
                   "silent": {"type": "boolean"}, "agent": {"type": "string"}}
  },
  "AgentSession": {
    "type": "object",
    "required": ["session_id", "agent", "channel", "mode", "summary", "message_count", "tokens",
                 "messages"],
    "properties": {"session_id": {"type": "string"}, "agent": {"type": "string"},
                   "channel": {"type": "string"}, "mode": {"enum": ["persistent", "new"]},
                   "summary": {"type": "string"}, "message_count": {"type": "integer"},
                   "tokens": {"type": "integer"},
                   "messages": {"type": "array", "items": {
                     "type": "object", "required": ["seq", "role", "content", "tokens", "run_id"],
                     "properties": {"seq": {"type": "integer"},
                                    "role": {"enum": ["user", "assistant"]},
                                    "content": {"type": "string"}, "tokens": {"type": "integer"},
                                    "run_id": {"type": "string"}}}},
                   "created_at": {"$ref": "#/components/schemas/Time"},
                   "updated_at": {"$ref": "#/components/schemas/Time"}}
  },
  "AgentSessionList": {"type": "array", "items": {"$ref": "#/components/schemas/AgentSession"}},
  "AgentSessionsReset": {
    "type": "object",
    "required": ["status", "agent", "messages_deleted", "sessions"],
    "properties": {"status": {"const": "reset"}, "agent": {"type": "string"},
                   "messages_deleted": {"type": "integer"},
                   "sessions": {"type": "array", "items": {
                     "type": "object",
                     "required": ["session_id", "channel", "mode", "messages_deleted",
                                  "summary_deleted"],
                     "properties": {"session_id": {"type": "string"},
                                    "channel": {"type": "string"},
                                    "mode": {"enum": ["persistent", "new"]},
                                    "messages_deleted": {"type": "integer"},
                                    "summary_deleted": {"type": "boolean"}}}}}
  },
  "CronSchedule": {
    "oneOf": [
      {"type": "object", "required": ["kind", "expr"],
       "properties": {"kind": {"const": "cron"}, "expr": {"type": "string"},
                      "tz": {"type": "string"}}},
      {"type": "object", "required": ["kind", "every_secs"],
       "properties": {"kind": {"const": "every"},
                      "every_secs": {"type": "integer", "minimum": 60, "maximum": 86400}}},
      {"type": "object", "required": ["kind", "at"],
       "properties": {"kind": {"const": "at"}, "at": {"type": "string"}}}
    ]
  },
  "CronAction": {
    "type": "object", "required": ["kind"],
    "properties": {"kind": {"enum": ["agent_turn", "workflow_run"]},
                   "message": {"type": "string"}, "session_mode": {"enum": ["persistent", "new"]},
                   "model_override": {"type": "string"}, "timeout_secs": {"type": "integer"},
                   "workflow_id": {"type": "string"}, "input": {}}
  },
  "CronJobRequest": {
    "type": "object",
    "properties": {"agent_id": {"type": "string"}, "name": {"type": "string"},
                   "schedule": {"oneOf": [{"type": "string"},
                                          {"$ref": "#/components/schemas/CronSchedule"}]},
                   "tz": {"type": "string"},
                   "action": {"$ref": "#/components/schemas/CronAction"},
                   "message": {"type": "string"}, "session_mode": {"type": "string"},
                   "model_override": {"type": "string"},
                   "timeout_secs": {"type": "integer", "minimum": 1},
                   "workflow_id": {"type": "string"}, "input": {},
                   "enabled": {"type": "boolean"},
                   "misfire": {"enum": ["coalesce", "skip", "all"]},
                   "overlap": {"enum": ["skip", "allow"]}}
  },
  "CronJob": {
    "type": "object",
    "required": ["id", "job_id", "name", "agent_id", "schedule", "action", "enabled", "misfire",
                 "overlap", "next_fire_at", "fire_count", "consecutive_failures",
                 "disabled_reason"],
    "properties": {"id": {"type": "string"}, "job_id": {"type": "string"},
                   "name": {"type": "string"}, "agent_id": {"type": "string"},
                   "schedule": {"$ref": "#/components/schemas/CronSchedule"},
                   "action": {"$ref": "#/components/schemas/CronAction"},
                   "enabled": {"type": "boolean"},
                   "misfire": {"enum": ["coalesce", "skip", "all"]},
                   "overlap": {"enum": ["skip", "allow"]}, "origin": {"type": "string"},
                   "created_at": {"$ref": "#/components/schemas/TimeOrNull"},
                   "updated_at": {"$ref": "#/components/schemas/TimeOrNull"},
                   "next_fire_at": {"$ref": "#/components/schemas/TimeOrNull"},
                   "last_fire_at": {"$ref": "#/components/schemas/TimeOrNull"},
                   "last_run_id": {"type": "string"}, "last_status": {"type": "string"},
                   "fire_count": {"type": "integer"},
                   "consecutive_failures": {"type": "integer"},
                   "disabled_reason": {"type": "string"}, "status": {"type": "string"}}
  },
  "CronJobList": {
    "type": "object", "required": ["jobs", "total"],
    "properties": {"jobs": {"type": "array", "items": {"$ref": "#/components/schemas/CronJob"}},
                   "total": {"type": "integer"}}
  },
  "CronJobRemoved": {
    "type": "object", "required": ["status", "job_id"],
    "properties": {"status": {"const": "removed"}, "job_id": {"type": "string"}}
  },
  "CronJobEnable": {
    "type": "object", "required": ["enabled"], "properties": {"enabled": {"type": "boolean"}}
  },
  "CronJobEnabled": {
    "type": "object", "required": ["status", "job_id", "enabled"],
    "properties": {"status": {"const": "updated"}, "job_id": {"type": "string"},
                   "enabled": {"type": "boolean"}}
  },
  "CronJobStatus": {
    "allOf": [{"$ref": "#/components/schemas/CronJob"}],
    "type": "object", "required": ["running", "recent_fires"],
    "properties": {"running": {"type": "boolean"},
                   "recent_fires": {"type": "array", "items": {
                     "type": "object",
                     "required": ["scheduled_at", "status", "run_id", "catch_up", "missed"],
                     "properties": {"scheduled_at": {"$ref": "#/components/schemas/Time"},
                                    "recorded_at": {"$ref": "#/components/schemas/Time"},
                                    "status": {"enum": ["recorded", "started", "completed",
                                                        "failed", "skipped"]},
                                    "run_id": {"type": "string"}, "reason": {"type": "string"},
                                    "catch_up": {"type": "boolean"},
                                    "missed": {"type": "integer"}}}}}
  }
})json";

}  // namespace

std::string OpenApiDocument(const Router& router) {
    json::object doc;
    doc["openapi"] = "3.1.0";
    json::object info;
    info["title"] = "Strowger daemon API";
    info["version"] = "1";
    info["description"] =
        "strowger serve: workflows (LibreFang-compatible), runs (CMDC's Run API), live event "
        "streams, human tasks, tokens. Errors are RFC 9457 problem details. "
        "docs/formats/api.md is the long form.";
    doc["info"] = std::move(info);
    json::object paths;
    for (const auto& route : router.routes()) {
        json::object op;
        op["operationId"] = route.operation_id;
        op["summary"] = route.summary;
        op["tags"] = json::array{json::value(route.tag)};
        json::array parameters;
        for (auto segment : PathSegments(route.pattern)) {
            if (segment.size() < 2 || segment.front() != '{') continue;
            json::object p;
            p["name"] = std::string(segment.substr(1, segment.size() - 2));
            p["in"] = "path";
            p["required"] = true;
            p["schema"] = json::object{{"type", "string"}};
            parameters.push_back(std::move(p));
        }
        for (const auto& param : route.params) {
            json::object p;
            p["name"] = param.name;
            p["in"] = param.in;
            p["required"] = param.required;
            p["description"] = param.description;
            p["schema"] = json::object{{"type", param.type}};
            parameters.push_back(std::move(p));
        }
        if (!parameters.empty()) op["parameters"] = std::move(parameters);
        if (!route.request_schema.empty()) {
            json::object body;
            body["required"] = route.request_required;
            body["content"] = Content("application/json", route.request_schema);
            op["requestBody"] = std::move(body);
        }
        std::vector<ResponseDoc> responses = route.responses;
        auto has = [&](int status) {
            for (const auto& r : responses) {
                if (r.status == status) return true;
            }
            return false;
        };
        // What any route may answer besides its own responses.
        if (!has(400)) responses.push_back(ProblemDoc(400, "A parameter or the body is not valid"));
        if (route.role != Role::kPublic) {
            if (!has(401)) responses.push_back(ProblemDoc(401, "No valid token"));
            if (!has(403)) responses.push_back(ProblemDoc(403, "The token's role is too low"));
        }
        if (route.pattern.find('{') != std::string::npos && !has(404)) {
            responses.push_back(ProblemDoc(404, "No such resource"));
        }
        json::object response_map;
        for (const auto& r : responses) {
            json::object object = ResponseObject(r);
            // Event routes answer text/event-stream too.
            if (r.status == 200 &&
                (route.operation_id == "runEvents" || route.operation_id == "allEvents")) {
                json::object stream;
                stream["schema"] = json::object{{"type", "string"}};
                object["content"].as_object()["text/event-stream"] = std::move(stream);
            }
            response_map[std::to_string(r.status)] = std::move(object);
        }
        json::object fallback;
        fallback["description"] = "An error (problem details)";
        fallback["content"] = Content("application/problem+json", "Problem");
        response_map["default"] = std::move(fallback);
        op["responses"] = std::move(response_map);
        if (route.role != Role::kPublic) {
            op["security"] = json::array{json::object{{"bearer", json::array()}}};
            op["x-strowger-role"] = std::string(RoleName(route.role));
        } else {
            op["security"] = json::array();
        }
        std::string method = route.method;
        for (auto& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        auto& item = paths[route.pattern];
        if (!item.is_object()) item.emplace_object();
        item.as_object()[method] = std::move(op);
    }
    doc["paths"] = std::move(paths);
    json::object components;
    json::object schemas = json::parse(kSchemas).as_object();
    json::value automation = json::parse(internal::kAutomationSchemas);
    for (auto& [name, schema] : automation.as_object()) schemas[name] = schema;
    json::value agent_cron = json::parse(kAgentCronSchemas);
    for (auto& [name, schema] : agent_cron.as_object()) schemas[name] = schema;
    components["schemas"] = std::move(schemas);
    json::object bearer;
    bearer["type"] = "http";
    bearer["scheme"] = "bearer";
    bearer["description"] = "An API token (stg_...): `strowger token create`";
    components["securitySchemes"] = json::object{{"bearer", std::move(bearer)}};
    doc["components"] = std::move(components);
    return json::serialize(doc);
}

}  // namespace strowger::api
