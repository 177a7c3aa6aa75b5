// Automation's endpoints (issue 16, part A): LibreFang's trigger endpoints (reference/003,
// "触发器端点": same paths, bodies and status codes), the agent memory, signed webhooks, and
// the bus's recent events. docs/formats/api.md "Automation".
#include <boost/json.hpp>

#include "api/internal/service.hpp"
#include "core/strings.hpp"

namespace strowger::api::internal {
namespace {

// An error whose message starts with "field: ..." as a problem naming that field.
Response ProblemNamingField(const Error& error) {
    if (error.code() != ErrorCode::kInvalidArgument) return ProblemFor(error);
    const std::string& message = error.message();
    size_t colon = message.find(": ");
    std::string field = colon == std::string::npos ? "body" : message.substr(0, colon);
    if (field.find(' ') != std::string::npos) field = "body";
    return Problem(
        400, message,
        {FieldError{field, colon == std::string::npos ? message : message.substr(colon + 2)}});
}

json::object TriggerJson(const store::TriggerRecord& t) {
    json::object o;
    o["id"] = t.trigger_id;
    o["agent_id"] = t.agent_id;
    o["workflow_id"] = t.workflow_id;
    auto pattern = ParseJson(t.pattern);
    o["pattern"] = pattern ? *pattern : json::value(t.pattern);
    o["prompt_template"] = t.prompt_template;
    o["enabled"] = t.enabled;
    o["fire_count"] = t.fire_count;
    o["max_fires"] = t.max_fires;
    o["cooldown_secs"] = t.cooldown_secs;
    o["created_at"] = FormatRfc3339(t.created_at);
    return o;
}

// The fields of a trigger body; a problem naming the first bad one.
std::optional<automation::TriggerChange> ParseTriggerChange(const json::object& body,
                                                            Response& problem) {
    automation::TriggerChange change;
    for (const auto& [name, value] : body) {
        std::string field(name);
        if (field == "agent_id" || field == "workflow_id" || field == "prompt_template") {
            if (!value.is_string()) {
                problem = FieldProblem(field, "expected a string");
                return std::nullopt;
            }
            std::string text(value.as_string());
            (field == "agent_id"      ? change.agent_id
             : field == "workflow_id" ? change.workflow_id
                                      : change.prompt_template) = std::move(text);
        } else if (field == "pattern") {
            auto pattern = automation::ParsePattern(value);
            if (!pattern) {
                problem = ProblemNamingField(pattern.error());
                return std::nullopt;
            }
            change.pattern = *pattern;
        } else if (field == "enabled") {
            if (!value.is_bool()) {
                problem = FieldProblem(field, "expected true or false");
                return std::nullopt;
            }
            change.enabled = value.as_bool();
        } else if (field == "max_fires" || field == "cooldown_secs") {
            if (!value.is_int64() || value.as_int64() < 0) {
                problem = FieldProblem(field, "expected a whole number >= 0");
                return std::nullopt;
            }
            (field == "max_fires" ? change.max_fires : change.cooldown_secs) = value.as_int64();
        } else if (field == "id" || field == "fire_count" || field == "created_at") {
            // Read-only fields of a trigger sent back as it was read: ignored.
        } else {
            problem = FieldProblem(field,
                                   "unknown field (known: agent_id, workflow_id, pattern, "
                                   "prompt_template, enabled, max_fires, cooldown_secs)");
            return std::nullopt;
        }
    }
    return change;
}

Awaitable<Response> CreateTrigger(Service* s, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    auto change = ParseTriggerChange(*body, problem);
    if (!change) co_return problem;
    if (!change->pattern) co_return FieldProblem("pattern", "required");
    if (change->workflow_id && !change->workflow_id->empty() &&
        !s->workflows.Find(*change->workflow_id)) {
        co_return FieldProblem("workflow_id", "no workflow \"" + *change->workflow_id + "\"");
    }
    auto created = co_await s->automation.triggers->Create(std::move(*change));
    if (!created) co_return ProblemNamingField(created.error());
    json::object out;
    out["trigger_id"] = created->trigger_id;
    out["agent_id"] = created->agent_id;
    out["workflow_id"] = created->workflow_id;
    co_return JsonResponse(201, out);
}

Awaitable<Response> ListTriggers(Service* s, Request request) {
    json::array list;
    for (const auto& t : s->automation.triggers->List(request.Query("agent_id").value_or(""))) {
        list.push_back(TriggerJson(t));
    }
    co_return JsonResponse(200, list);
}

Awaitable<Response> GetTrigger(Service* s, Request request) {
    const auto* t = s->automation.triggers->Find(request.Param("id"));
    if (!t) co_return Problem(404, "Trigger not found");
    co_return JsonResponse(200, TriggerJson(*t));
}

Awaitable<Response> ChangeTrigger(Service* s, Request request, bool put) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    auto change = ParseTriggerChange(*body, problem);
    if (!change) co_return problem;
    if (put && !change->enabled) co_return FieldProblem("enabled", "required: true or false");
    if (!s->automation.triggers->Find(request.Param("id"))) {
        co_return Problem(404, "Trigger not found");
    }
    if (change->workflow_id && !change->workflow_id->empty() &&
        !s->workflows.Find(*change->workflow_id)) {
        co_return FieldProblem("workflow_id", "no workflow \"" + *change->workflow_id + "\"");
    }
    auto updated = co_await s->automation.triggers->Update(request.Param("id"), std::move(*change));
    if (!updated) co_return ProblemNamingField(updated.error());
    if (!put) co_return JsonResponse(200, TriggerJson(*updated));
    json::object out;
    out["status"] = "updated";
    out["trigger_id"] = updated->trigger_id;
    out["enabled"] = updated->enabled;
    co_return JsonResponse(200, out);
}

Awaitable<Response> DeleteTrigger(Service* s, Request request) {
    auto removed = co_await s->automation.triggers->Delete(request.Param("id"));
    if (!removed) {
        if (removed.error().code() == ErrorCode::kNotFound)
            co_return Problem(404, "Trigger not found");
        co_return ProblemFor(removed.error());
    }
    json::object out;
    out["status"] = "removed";
    out["trigger_id"] = request.Param("id");
    co_return JsonResponse(200, out);
}

Awaitable<Response> TriggerFires(Service* s, Request request) {
    if (!s->automation.triggers->Find(request.Param("id"))) {
        co_return Problem(404, "Trigger not found");
    }
    Response problem;
    auto limit = QueryInt(request, "limit", 100, 1, 1000, problem);
    if (!limit) co_return problem;
    auto fires = co_await s->store->ListTriggerFires(request.Param("id"), *limit);
    if (!fires) co_return ProblemFor(fires.error());
    json::array list;
    for (const auto& f : *fires) {
        json::object o;
        o["fire_id"] = f.fire_id;
        o["event_id"] = f.event_id;
        o["status"] = f.status;
        o["run_id"] = f.run_id;
        o["error"] = f.error;
        o["prompt"] = f.prompt;
        o["depth"] = f.depth;
        o["created_at"] = FormatRfc3339(f.created_at);
        list.push_back(std::move(o));
    }
    json::object out;
    out["fires"] = std::move(list);
    co_return JsonResponse(200, out);
}

// ---- Memory ----

json::object MemoryJson(const store::MemoryEntry& e) {
    json::object o;
    o["namespace"] = e.name_space;
    o["key"] = e.key;
    auto value = ParseJson(e.value);
    o["value"] = value ? *value : json::value(e.value);
    o["updated_at"] = FormatRfc3339(e.updated_at);
    return o;
}

Awaitable<Response> ListMemory(Service* s, Request request) {
    Response problem;
    auto limit = QueryInt(request, "limit", 1000, 1, 10000, problem);
    if (!limit) co_return problem;
    auto entries = co_await s->automation.memory->List(
        request.Param("namespace"), request.Query("prefix").value_or(""), *limit);
    if (!entries) co_return ProblemNamingField(entries.error());
    json::array list;
    for (const auto& e : *entries) {
        json::object o = MemoryJson(e);
        o.erase("namespace");
        list.push_back(std::move(o));
    }
    json::object out;
    out["namespace"] = request.Param("namespace");
    out["entries"] = std::move(list);
    co_return JsonResponse(200, out);
}

Awaitable<Response> GetMemory(Service* s, Request request) {
    auto entry =
        co_await s->automation.memory->Get(request.Param("namespace"), request.Param("key"));
    if (!entry) co_return ProblemNamingField(entry.error());
    co_return JsonResponse(200, MemoryJson(*entry));
}

Awaitable<Response> PutMemory(Service* s, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    auto value = body->find("value");
    if (value == body->end()) co_return FieldProblem("value", "required: any JSON value");
    if (body->size() != 1) co_return FieldProblem("body", "only \"value\" is allowed");
    auto changed = co_await s->automation.memory->Set(
        request.Param("namespace"), request.Param("key"), value->value(), s->clock.Now());
    if (!changed) co_return ProblemNamingField(changed.error());
    json::object out;
    out["namespace"] = request.Param("namespace");
    out["key"] = request.Param("key");
    out["value"] = value->value();
    out["change"] = changed->kind;
    co_return JsonResponse(200, out);
}

Awaitable<Response> DeleteMemory(Service* s, Request request) {
    auto deleted =
        co_await s->automation.memory->Delete(request.Param("namespace"), request.Param("key"));
    if (!deleted) co_return ProblemNamingField(deleted.error());
    json::object out;
    out["status"] = "deleted";
    out["namespace"] = request.Param("namespace");
    out["key"] = request.Param("key");
    co_return JsonResponse(200, out);
}

// ---- Webhooks ----

json::object HookJson(const store::WebhookRecord& h) {
    json::object o;
    o["name"] = h.name;
    o["workflow_id"] = h.workflow_id;
    o["require_timestamp"] = h.require_timestamp;
    o["url"] = "/api/hooks/" + h.name;
    o["created_by"] = h.created_by;
    o["created_at"] = FormatRfc3339(h.created_at);
    return o;
}

Awaitable<Response> CreateHook(Service* s, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    store::WebhookRecord hook;
    for (const auto& [name, value] : *body) {
        std::string field(name);
        if (field == "name" || field == "workflow" || field == "secret") {
            if (!value.is_string()) co_return FieldProblem(field, "expected a string");
            std::string text(value.as_string());
            (field == "name"       ? hook.name
             : field == "workflow" ? hook.workflow_id
                                   : hook.secret) = std::move(text);
        } else if (field == "require_timestamp") {
            if (!value.is_bool()) co_return FieldProblem(field, "expected true or false");
            hook.require_timestamp = value.as_bool();
        } else {
            co_return FieldProblem(
                field, "unknown field (known: name, workflow, secret, require_timestamp)");
        }
    }
    if (!hook.workflow_id.empty()) {
        const auto* entry = s->workflows.Find(hook.workflow_id);
        if (!entry) co_return FieldProblem("workflow", "no workflow \"" + hook.workflow_id + "\"");
        hook.workflow_id = entry->id;
    }
    hook.created_by = request.actor;
    auto created = co_await s->automation.webhooks->Create(std::move(hook));
    if (!created) co_return ProblemNamingField(created.error());
    json::object out = HookJson(*created);
    out["secret"] = created->secret;  // shown once
    co_return JsonResponse(201, out);
}

Awaitable<Response> ListHooks(Service* s, Request) {
    auto hooks = co_await s->store->ListWebhooks();
    if (!hooks) co_return ProblemFor(hooks.error());
    json::array list;
    for (const auto& h : *hooks) list.push_back(HookJson(h));
    json::object out;
    out["hooks"] = std::move(list);
    co_return JsonResponse(200, out);
}

Awaitable<Response> DeleteHook(Service* s, Request request) {
    auto removed = co_await s->store->DeleteWebhook(request.Param("name"));
    if (!removed) co_return ProblemFor(removed.error());
    json::object out;
    out["status"] = "removed";
    out["name"] = request.Param("name");
    co_return JsonResponse(200, out);
}

Awaitable<Response> DeliverHook(Service* s, Request request) {
    automation::Delivery delivery;
    delivery.hook = request.Param("name");
    delivery.body = std::move(request.body);
    delivery.signature = request.Header("x-hub-signature-256");
    delivery.timestamp = request.Header("x-strowger-timestamp");
    delivery.delivery_id = request.Header("x-delivery-id");
    if (delivery.delivery_id.empty()) delivery.delivery_id = request.Header("x-github-delivery");
    delivery.remote = request.remote;
    if (delivery.delivery_id.size() > 200) {
        co_return FieldProblem("X-Delivery-Id", "at most 200 characters");
    }
    auto received = co_await s->automation.webhooks->Receive(std::move(delivery));
    if (!received) co_return ProblemNamingField(received.error());
    json::object out;
    out["status"] = received->status;
    if (!received->run_id.empty()) out["run_id"] = received->run_id;
    if (!received->event_id.empty()) out["event_id"] = received->event_id;
    co_return JsonResponse(received->status == "duplicate" ? 200 : 202, out);
}

// ---- The bus ----

Awaitable<Response> RecentEvents(Service* s, Request request) {
    Response problem;
    auto limit = QueryInt(request, "limit", 100, 1, 1000, problem);
    if (!limit) co_return problem;
    json::array list;
    for (const auto& e : s->automation.bus->Recent(static_cast<size_t>(*limit))) {
        json::object o;
        o["id"] = e.id;
        o["kind"] = std::string(automation::EventKindName(e.kind));
        o["type"] = e.type;
        o["subject"] = e.subject;
        o["description"] = e.description;
        o["depth"] = e.depth;
        o["run_id"] = e.run_id;
        o["time"] = FormatRfc3339(e.time);
        list.push_back(std::move(o));
    }
    json::object out;
    out["events"] = std::move(list);
    co_return JsonResponse(200, out);
}

}  // namespace

const char* const kAutomationSchemas = R"json({
  "TriggerRequest": {
    "type": "object",
    "properties": {
      "agent_id": {"type": "string"}, "workflow_id": {"type": "string"},
      "pattern": {"description": "\"all\", \"lifecycle\", {\"agent_spawned\": {\"name_pattern\": \"coder\"}}, ..."},
      "prompt_template": {"type": "string"}, "enabled": {"type": "boolean"},
      "max_fires": {"type": "integer", "minimum": 0},
      "cooldown_secs": {"type": "integer", "minimum": 0}
    }
  },
  "TriggerCreated": {
    "type": "object", "required": ["trigger_id", "agent_id"],
    "properties": {"trigger_id": {"type": "string"}, "agent_id": {"type": "string"},
                   "workflow_id": {"type": "string"}}
  },
  "Trigger": {
    "type": "object",
    "required": ["id", "agent_id", "pattern", "prompt_template", "enabled", "fire_count",
                 "max_fires", "created_at"],
    "properties": {
      "id": {"type": "string"}, "agent_id": {"type": "string"}, "workflow_id": {"type": "string"},
      "pattern": {}, "prompt_template": {"type": "string"}, "enabled": {"type": "boolean"},
      "fire_count": {"type": "integer", "minimum": 0}, "max_fires": {"type": "integer", "minimum": 0},
      "cooldown_secs": {"type": "integer", "minimum": 0},
      "created_at": {"$ref": "#/components/schemas/Time"}
    }
  },
  "TriggerList": {"type": "array", "items": {"$ref": "#/components/schemas/Trigger"}},
  "TriggerUpdated": {
    "type": "object", "required": ["status", "trigger_id", "enabled"],
    "properties": {"status": {"const": "updated"}, "trigger_id": {"type": "string"},
                   "enabled": {"type": "boolean"}}
  },
  "TriggerRemoved": {
    "type": "object", "required": ["status", "trigger_id"],
    "properties": {"status": {"const": "removed"}, "trigger_id": {"type": "string"}}
  },
  "TriggerFires": {
    "type": "object", "required": ["fires"],
    "properties": {"fires": {"type": "array", "items": {
      "type": "object", "required": ["fire_id", "event_id", "status", "run_id"],
      "properties": {"fire_id": {"type": "string"}, "event_id": {"type": "string"},
                     "status": {"enum": ["pending", "started", "failed"]},
                     "run_id": {"type": "string"}, "error": {"type": "string"},
                     "prompt": {"type": "string"}, "depth": {"type": "integer"},
                     "created_at": {"$ref": "#/components/schemas/Time"}}}}}
  },
  "MemoryEntry": {
    "type": "object", "required": ["namespace", "key", "value", "updated_at"],
    "properties": {"namespace": {"type": "string"}, "key": {"type": "string"}, "value": {},
                   "updated_at": {"$ref": "#/components/schemas/Time"}}
  },
  "MemoryList": {
    "type": "object", "required": ["namespace", "entries"],
    "properties": {"namespace": {"type": "string"}, "entries": {"type": "array", "items": {
      "type": "object", "required": ["key", "value"],
      "properties": {"key": {"type": "string"}, "value": {},
                     "updated_at": {"$ref": "#/components/schemas/Time"}}}}}
  },
  "MemoryPut": {"type": "object", "required": ["value"], "properties": {"value": {}}},
  "MemorySet": {
    "type": "object", "required": ["namespace", "key", "value", "change"],
    "properties": {"namespace": {"type": "string"}, "key": {"type": "string"}, "value": {},
                   "change": {"enum": ["created", "updated", "unchanged"]}}
  },
  "MemoryDeleted": {
    "type": "object", "required": ["status", "namespace", "key"],
    "properties": {"status": {"const": "deleted"}, "namespace": {"type": "string"},
                   "key": {"type": "string"}}
  },
  "HookRequest": {
    "type": "object", "required": ["name"],
    "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                   "workflow": {"type": "string", "description": "workflow id or name; absent: post an event on the bus"},
                   "secret": {"type": "string", "minLength": 16},
                   "require_timestamp": {"type": "boolean"}}
  },
  "Hook": {
    "type": "object", "required": ["name", "workflow_id", "require_timestamp", "url"],
    "properties": {"name": {"type": "string"}, "workflow_id": {"type": "string"},
                   "require_timestamp": {"type": "boolean"}, "url": {"type": "string"},
                   "secret": {"type": "string"}, "created_by": {"type": "string"},
                   "created_at": {"$ref": "#/components/schemas/Time"}}
  },
  "HookList": {"type": "object", "required": ["hooks"],
               "properties": {"hooks": {"type": "array", "items": {"$ref": "#/components/schemas/Hook"}}}},
  "HookRemoved": {
    "type": "object", "required": ["status", "name"],
    "properties": {"status": {"const": "removed"}, "name": {"type": "string"}}
  },
  "HookDelivered": {
    "type": "object", "required": ["status"],
    "properties": {"status": {"enum": ["started", "accepted", "duplicate"]},
                   "run_id": {"type": "string"}, "event_id": {"type": "string"}}
  },
  "BusEvents": {
    "type": "object", "required": ["events"],
    "properties": {"events": {"type": "array", "items": {
      "type": "object", "required": ["id", "kind", "type", "description", "depth", "time"],
      "properties": {"id": {"type": "string"},
                     "kind": {"enum": ["lifecycle", "node", "tool", "task", "system", "memory"]},
                     "type": {"type": "string"}, "subject": {"type": "string"},
                     "description": {"type": "string"}, "depth": {"type": "integer"},
                     "run_id": {"type": "string"}, "time": {"$ref": "#/components/schemas/Time"}}}}}
  }
})json";

void AddAutomationRoutes(Router& router, Service& service) {
    Service* s = &service;
    // Triggers (LibreFang's shapes).
    RouteTable table(router, "triggers");
    table.Add(
        "POST", "/api/triggers", Role::kOperator, "createTrigger",
        "Create a trigger: a pattern over the event bus, and an agent or workflow to start",
        [s](Request r) { return CreateTrigger(s, std::move(r)); },
        {Ok(201, "Created", "TriggerCreated")}, {}, Body("TriggerRequest"));
    table.Add("GET", "/api/triggers", Role::kViewer, "listTriggers", "List triggers",
              [s](Request r) { return ListTriggers(s, std::move(r)); },
              {Ok(200, "Triggers", "TriggerList")},
              {ParamDoc{"agent_id", "query", "string", "only the triggers of this agent"}});
    table.Add("GET", "/api/triggers/{id}", Role::kViewer, "getTrigger", "A trigger",
              [s](Request r) { return GetTrigger(s, std::move(r)); },
              {Ok(200, "The trigger", "Trigger")});
    table.Add(
        "PUT", "/api/triggers/{id}", Role::kOperator, "putTrigger",
        "Enable or disable a trigger ({\"enabled\": false}; other fields may be given too)",
        [s](Request r) { return ChangeTrigger(s, std::move(r), true); },
        {Ok(200, "Updated", "TriggerUpdated")}, {}, Body("TriggerRequest"));
    table.Add(
        "PATCH", "/api/triggers/{id}", Role::kOperator, "patchTrigger",
        "Change some fields of a trigger",
        [s](Request r) { return ChangeTrigger(s, std::move(r), false); },
        {Ok(200, "The trigger as changed", "Trigger")}, {}, Body("TriggerRequest"));
    table.Add("DELETE", "/api/triggers/{id}", Role::kOperator, "deleteTrigger", "Delete a trigger",
              [s](Request r) { return DeleteTrigger(s, std::move(r)); },
              {Ok(200, "Removed", "TriggerRemoved")});
    table.Add("GET", "/api/triggers/{id}/fires", Role::kViewer, "triggerFires",
              "A trigger's fire records, newest first",
              [s](Request r) { return TriggerFires(s, std::move(r)); },
              {Ok(200, "Fires", "TriggerFires")},
              {ParamDoc{"limit", "query", "integer", "at most this many (1-1000, default 100)"}});
    table.Add("GET", "/api/automation/events", Role::kViewer, "busEvents",
              "The event bus's recent events (what triggers see), oldest first",
              [s](Request r) { return RecentEvents(s, std::move(r)); },
              {Ok(200, "Events", "BusEvents")},
              {ParamDoc{"limit", "query", "integer", "at most this many (1-1000, default 100)"}});
    // Memory.
    table.SetTag("memory");
    table.Add("GET", "/api/memory/{namespace}", Role::kViewer, "listMemory",
              "The keys of a memory namespace (global, agent:<name>, run:<id>)",
              [s](Request r) { return ListMemory(s, std::move(r)); },
              {Ok(200, "Entries", "MemoryList")},
              {ParamDoc{"prefix", "query", "string", "only keys starting with this"},
               ParamDoc{"limit", "query", "integer", "at most this many (default 1000)"}});
    table.Add("GET", "/api/memory/{namespace}/{key}", Role::kViewer, "getMemory", "A memory key",
              [s](Request r) { return GetMemory(s, std::move(r)); },
              {Ok(200, "The entry", "MemoryEntry")});
    table.Add(
        "PUT", "/api/memory/{namespace}/{key}", Role::kOperator, "putMemory",
        "Set a memory key to a JSON value", [s](Request r) { return PutMemory(s, std::move(r)); },
        {Ok(200, "Set", "MemorySet")}, {}, Body("MemoryPut"));
    table.Add("DELETE", "/api/memory/{namespace}/{key}", Role::kOperator, "deleteMemory",
              "Delete a memory key", [s](Request r) { return DeleteMemory(s, std::move(r)); },
              {Ok(200, "Deleted", "MemoryDeleted")});
    // Webhooks.
    table.SetTag("hooks");
    table.Add(
        "POST", "/api/hooks", Role::kAdmin, "createHook",
        "Create a signed webhook (its secret is in this response only)",
        [s](Request r) { return CreateHook(s, std::move(r)); },
        {Ok(201, "Created", "Hook"), Ok(409, "The name is taken", "Problem")}, {},
        Body("HookRequest"));
    table.Add("GET", "/api/hooks", Role::kAdmin, "listHooks", "List webhooks (never their secrets)",
              [s](Request r) { return ListHooks(s, std::move(r)); },
              {Ok(200, "Hooks", "HookList")});
    table.Add("DELETE", "/api/hooks/{name}", Role::kAdmin, "deleteHook", "Delete a webhook",
              [s](Request r) { return DeleteHook(s, std::move(r)); },
              {Ok(200, "Removed", "HookRemoved")});
    table.Add(
        "POST", "/api/hooks/{name}", Role::kPublic, "deliverHook",
        "Deliver to a webhook: X-Hub-Signature-256 (HMAC-SHA256 of the body) is its "
        "authentication, X-Strowger-Timestamp within 5 minutes, X-Delivery-Id deduplicated",
        [s](Request r) { return DeliverHook(s, std::move(r)); },
        {Ok(202, "Started a run, or posted an event", "HookDelivered"),
         Ok(200, "A duplicate delivery: nothing started", "HookDelivered"),
         Ok(401, "Bad or missing signature, or a timestamp outside the window", "Problem")},
        {ParamDoc{"X-Hub-Signature-256", "header", "string", "sha256=<hex HMAC>", true},
         ParamDoc{"X-Strowger-Timestamp", "header", "string", "unix seconds"},
         ParamDoc{"X-Delivery-Id", "header", "string", "deduplicated (or X-GitHub-Delivery)"}});
}

}  // namespace strowger::api::internal
