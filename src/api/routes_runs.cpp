// The Run API (CMDC's Run API over HTTP, docs/formats/api.md "Runs"): start, list, status,
// await, events (JSON pages and text/event-stream), control, retry, rerun, human tasks.
//
// Handlers are free coroutines taking their arguments by value; the routes' lambdas only call
// them (a coroutine lambda's captures would live in the route table, not in the frame).
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>

#include <spdlog/spdlog.h>

#include "api/internal/service.hpp"
#include "core/ids.hpp"
#include "core/sha256.hpp"
#include "core/strings.hpp"
#include "ledger/chain.hpp"
#include "model/inputs.hpp"

namespace strowger::api::internal {
namespace {

using ledger::RunStatus;
constexpr auto kHeartbeat = std::chrono::seconds(15);

std::string StatusName(RunStatus status) {
    return std::string(ledger::RunStatusName(status));
}

json::object Summary(const store::RunRecord& r) {
    json::object o;
    o["run_id"] = r.run_id;
    o["workflow"] = r.workflow;
    o["status"] = StatusName(r.status);
    o["created_at"] = FormatRfc3339(r.created_at);
    o["updated_at"] = FormatRfc3339(r.updated_at);
    o["events"] = r.head.seq;
    return o;
}

// The run input from a request's `input`: text as it is, any other JSON value as compact JSON.
std::string InputText(const json::object& body) {
    auto it = body.find("input");
    if (it == body.end() || it->value().is_null()) return {};
    if (it->value().is_string()) return std::string(it->value().as_string());
    return CompactJson(it->value());
}

bool ValidSource(std::string_view source) {
    if (source.empty() || source.size() > 64) return false;
    for (char c : source) {
        if (!(std::islower(static_cast<unsigned char>(c)) ||
              std::isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
            return false;
        }
    }
    return true;
}

bool TypeWanted(const std::vector<std::string>& types, std::string_view type) {
    if (types.empty()) return true;
    for (const auto& t : types) {
        if (t == type || (EndsWith(t, ".") && StartsWith(type, t))) return true;
    }
    return false;
}

std::vector<std::string> SplitList(const Request& request, std::string_view name) {
    std::vector<std::string> out;
    for (const auto& [key, value] : request.query) {
        if (key != name) continue;
        for (auto part : Split(value, ',')) {
            auto trimmed = Trim(part);
            if (!trimmed.empty()) out.emplace_back(trimmed);
        }
    }
    return out;
}

}  // namespace

// ---- Starting runs (shared with the workflow routes) ----

// Starts a run of a registry version; the response for the caller (202 new, 200 existing).
Awaitable<Response> StartFromRegistry(Service* s, StartArgs args, Service::Started* started_out) {
    const std::string workflow_id = args.workflow->id;
    const int64_t version = args.version->record.version;
    json::object request_doc;
    request_doc["workflow"] = workflow_id;
    request_doc["version"] = version;
    request_doc["input"] = args.input;
    const std::string request_sha = Sha256Hex(*CanonicalJson(request_doc));
    auto respond = [&](const std::string& run_id, bool existing, RunStatus status) {
        json::object body;
        body["run_id"] = run_id;
        body["status"] = StatusName(status);
        body["workflow_id"] = workflow_id;
        body["workflow_version"] = version;
        body["existing"] = existing;
        return JsonResponse(existing ? 200 : 202, body);
    };
    auto conflict = [&](const std::string& run_id) {
        return Problem(409,
                       "idempotency key \"" + args.idempotency_key + "\" was used by run " +
                           run_id + " with a different request",
                       {FieldError{"idempotency_key", "used before with a different body"}},
                       "urn:strowger:problem:idempotency-conflict");
    };
    if (!args.idempotency_key.empty()) {
        if (auto it = s->starting.find(args.idempotency_key); it != s->starting.end()) {
            if (it->second.first != request_sha) co_return conflict(it->second.second);
            co_return respond(it->second.second, true, RunStatus::kPending);
        }
        auto existing = co_await s->store->FindByIdempotencyKey(args.idempotency_key);
        if (existing) {
            auto annotation = co_await s->store->GetRunAnnotation(*existing);
            if (annotation && annotation->request_sha256 != request_sha) {
                co_return conflict(*existing);
            }
            auto record = co_await s->store->GetRun(*existing);
            if (!record) co_return ProblemFor(record.error());
            if (started_out) *started_out = Service::Started{*existing, true, record->status};
            co_return respond(*existing, true, record->status);
        }
        if (existing.error().code() != ErrorCode::kNotFound) {
            co_return ProblemFor(existing.error());
        }
    }
    if (!args.version->plan) {
        co_return Problem(409, "version " + std::to_string(version) + " of workflow " +
                                   workflow_id + " does not compile here: " + args.version->error);
    }
    // The workflow's typed inputs, checked before the run is created (as `strowger run` does).
    auto applied = model::ApplyInputs(args.version->plan->inputs,
                                      model::GivenInput{args.input, args.input_json, {}});
    if (!applied.ok()) {
        std::vector<FieldError> errors;
        for (const auto& problem : applied.problems) {
            errors.push_back(
                FieldError{problem.input.empty() ? std::string("input") : "input." + problem.input,
                           problem.message});
        }
        co_return Problem(
            400,
            "the input does not match the workflow's inputs: " + applied.problems.front().message,
            std::move(errors));
    }
    engine::StartRequest request;
    request.plan = args.version->plan;
    request.input = applied.input;
    request.idempotency_key = args.idempotency_key;
    request.run_id = NewRunId(s->clock, s->random);
    request.actor = args.actor;
    const std::string run_id = request.run_id;
    if (!args.idempotency_key.empty()) {
        s->starting[args.idempotency_key] = {request_sha, run_id};
    }
    auto started = co_await s->StartRun(std::move(request));
    if (started && !started->existing) {
        store::RunAnnotation annotation;
        annotation.run_id = started->run_id;
        annotation.workflow_id = workflow_id;
        annotation.workflow_version = version;
        annotation.trigger_source = args.trigger_source;
        annotation.metadata = args.metadata;
        annotation.request_sha256 = request_sha;
        annotation.actor = args.actor;
        auto annotated = co_await s->store->PutRunAnnotation(std::move(annotation));
        if (!annotated && annotated.error().code() != ErrorCode::kNotFound) {
            // The run goes on; only its annotation is missing (listed without trigger_source).
            spdlog::warn("run {}: cannot store its annotation: {}", started->run_id,
                         annotated.error().message());
        }
    }
    if (!args.idempotency_key.empty()) s->starting.erase(args.idempotency_key);
    if (!started) co_return ProblemFor(started.error());
    if (started_out) *started_out = *started;
    co_return respond(started->run_id, started->existing, started->status);
}

namespace {

// ---- POST /api/runs ----

Awaitable<Response> PostRun(Service* s, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    StartArgs args;
    args.actor = request.actor;
    auto workflow = body->find("workflow");
    if (workflow == body->end() || !workflow->value().is_string()) {
        co_return FieldProblem("workflow", "required: a workflow id or name");
    }
    args.workflow = s->workflows.Find(workflow->value().as_string());
    if (!args.workflow) {
        co_return Problem(404, "no workflow \"" + std::string(workflow->value().as_string()) + "\"",
                          {FieldError{"workflow", "no such workflow"}});
    }
    int64_t version = 0;
    if (auto v = body->find("version"); v != body->end() && !v->value().is_null()) {
        if (!v->value().is_int64() || v->value().as_int64() < 1) {
            co_return FieldProblem("version", "expected a version number (1, 2, ...)");
        }
        version = v->value().as_int64();
    }
    args.version = args.workflow->Find(version);
    if (!args.version) {
        co_return Problem(
            404, "workflow " + args.workflow->id + " has no version " + std::to_string(version),
            {FieldError{"version", "no such version"}});
    }
    args.input = InputText(*body);
    if (auto it = body->find("input"); it != body->end()) {
        args.input_json = !it->value().is_null() && !it->value().is_string();
    }
    std::string header_key = request.Header("idempotency-key");
    if (auto key = body->find("idempotency_key"); key != body->end() && !key->value().is_null()) {
        if (!key->value().is_string() || key->value().as_string().empty()) {
            co_return FieldProblem("idempotency_key", "expected a non-empty string");
        }
        args.idempotency_key = std::string(key->value().as_string());
        if (!header_key.empty() && header_key != args.idempotency_key) {
            co_return FieldProblem("idempotency_key",
                                   "differs from the Idempotency-Key header; give one of them");
        }
    } else {
        args.idempotency_key = header_key;
    }
    if (auto source = body->find("trigger_source");
        source != body->end() && !source->value().is_null()) {
        if (!source->value().is_string() || !ValidSource(source->value().as_string())) {
            co_return FieldProblem("trigger_source", "expected 1-64 of [a-z0-9_.-]");
        }
        args.trigger_source = std::string(source->value().as_string());
    }
    if (auto metadata = body->find("metadata");
        metadata != body->end() && !metadata->value().is_null()) {
        if (!metadata->value().is_object()) {
            co_return FieldProblem("metadata", "expected a JSON object");
        }
        args.metadata = CompactJson(metadata->value());
    }
    co_return co_await StartFromRegistry(s, std::move(args), nullptr);
}

// ---- GET /api/runs ----

Awaitable<Response> ListRuns(Service* s, Request request) {
    Response problem;
    auto limit = QueryInt(request, "limit", 50, 1, 500, problem);
    if (!limit) co_return problem;
    store::RunFilter filter;
    filter.limit = std::min<int64_t>(*limit * 4, 1000);
    filter.before_run_id = request.Query("cursor").value_or("");
    if (auto workflow = request.Query("workflow")) {
        const auto* entry = s->workflows.Find(*workflow);
        filter.workflow = entry ? entry->name() : *workflow;
    }
    for (const auto& name : SplitList(request, "status")) {
        bool known = false;
        RunStatus status = ledger::RunStatusFromName(name, &known);
        if (!known) {
            co_return FieldProblem("status", "unknown status \"" + name + "\"");
        }
        filter.statuses.push_back(status);
    }
    std::optional<SystemTime> since;
    if (auto text = request.Query("since")) {
        auto parsed = ParseRfc3339(*text);
        if (!parsed) co_return FieldProblem("since", "expected an RFC 3339 time");
        since = *parsed;
    }
    const std::string source = request.Query("trigger_source").value_or("");
    json::array runs;
    if (!since && source.empty()) {
        // Only filters the store applies: its page and cursor as they are.
        filter.limit = *limit;
        auto page = co_await s->store->ListRuns(filter);
        if (!page) co_return ProblemFor(page.error());
        for (const auto& record : page->runs) runs.push_back(Summary(record));
        json::object out;
        out["runs"] = std::move(runs);
        out["next_cursor"] =
            page->next_cursor.empty() ? json::value(nullptr) : json::value(page->next_cursor);
        co_return JsonResponse(200, out);
    }
    // Pages of the store until `limit` runs pass the filters the store does not apply; ids sort
    // by time, so the first run created before `since` ends the listing.
    int64_t scanned = 0;
    bool done = false;
    std::string last;
    while (static_cast<int64_t>(runs.size()) < *limit && scanned < 10'000) {
        auto page = co_await s->store->ListRuns(filter);
        if (!page) co_return ProblemFor(page.error());
        for (const auto& record : page->runs) {
            ++scanned;
            if (since && record.created_at < *since) {
                done = true;
                break;
            }
            if (!source.empty()) {
                auto annotation = co_await s->store->GetRunAnnotation(record.run_id);
                std::string actual = annotation ? annotation->trigger_source : "";
                if (actual != source) continue;
            }
            runs.push_back(Summary(record));
            last = record.run_id;
            if (static_cast<int64_t>(runs.size()) >= *limit) break;
        }
        if (done || page->next_cursor.empty()) {
            done = true;
            break;
        }
        if (static_cast<int64_t>(runs.size()) >= *limit) break;
        filter.before_run_id = page->next_cursor;
    }
    // A full page may have more after it: its last run is the cursor.
    std::string next_cursor =
        !done || static_cast<int64_t>(runs.size()) >= *limit ? last : std::string();
    if (done && static_cast<int64_t>(runs.size()) < *limit) next_cursor.clear();
    json::object out;
    out["runs"] = std::move(runs);
    out["next_cursor"] = next_cursor.empty() ? json::value(nullptr) : json::value(next_cursor);
    co_return JsonResponse(200, out);
}

// ---- GET /api/runs/{id} and /wait ----

Awaitable<Response> GetRun(Service* s, Request request) {
    auto detail = co_await s->RunDetail(request.Param("id"));
    if (!detail) co_return ProblemFor(detail.error());
    co_return RawJsonResponse(200, std::move(*detail));
}

Awaitable<Response> WaitRun(Service* s, Request request) {
    Response problem;
    auto timeout = QueryInt(request, "timeout_ms", 30'000, 0, 600'000, problem);
    if (!timeout) co_return problem;
    const std::string run_id = request.Param("id");
    auto record = co_await s->WaitForStop(run_id, std::chrono::milliseconds(*timeout));
    if (!record) co_return ProblemFor(record.error());
    if (record->status == RunStatus::kRunning || record->status == RunStatus::kPending) {
        json::object body;
        body["run_id"] = run_id;
        body["status"] = StatusName(record->status);
        co_return JsonResponse(202, body);
    }
    auto run = co_await s->RunRecord(run_id);
    if (!run) co_return ProblemFor(run.error());
    co_return JsonResponse(200, *run);
}

// ---- Events ----

struct EventStreamArgs {
    std::string run_id;
    int64_t after = 0;
    ledger::ChainHead head;  // of the verified chain at `after`
    std::vector<std::string> types;
};

void AppendFrame(std::string& out, std::string_view id, std::string_view event,
                 std::string_view data) {
    if (!id.empty()) {
        out += "id: ";
        out += id;
        out += '\n';
    }
    out += "event: ";
    out += event;
    out += "\ndata: ";
    out += data;
    out += "\n\n";
}

Awaitable<void> StreamRun(Service* s, EventStreamArgs args, StreamWriter& writer) {
    auto follower = s->hub.Follow(args.run_id, true);
    std::string last_type;
    while (true) {
        store::EventQuery query;
        query.after_seq = args.after;
        auto stored = co_await s->store->ReadEvents(args.run_id, query);
        std::string frames;
        if (!stored) {
            AppendFrame(frames, "", "error", "{\"detail\":\"cannot read the ledger\"}");
            co_await writer.Write(std::move(frames));
            co_return;
        }
        for (const auto& event : *stored) {
            if (auto issue = ledger::VerifyNext(args.head, args.run_id, event.encoded)) {
                json::object detail;
                detail["detail"] = "the ledger does not verify at seq " +
                                   std::to_string(issue->seq) + ": " + issue->reason;
                AppendFrame(frames, "", "error", json::serialize(detail));
                co_await writer.Write(std::move(frames));
                co_return;
            }
            args.after = event.seq;
            last_type = event.type;
            if (TypeWanted(args.types, event.type)) {
                AppendFrame(frames, std::to_string(event.seq), event.type, event.encoded);
            }
        }
        // Streamed model text: transient, no id (a reconnect does not get it again).
        while (!follower->deltas.empty()) {
            auto& delta = follower->deltas.front();
            json::object data;
            data["run_id"] = args.run_id;
            data["node"] = delta.node;
            data["text"] = delta.text;
            AppendFrame(frames, "", "delta", json::serialize(data));
            follower->deltas.pop_front();
        }
        const bool ended = last_type == "run.completed" || last_type == "run.failed" ||
                           last_type == "run.cancelled";
        if (ended) {
            AppendFrame(frames, "", "end",
                        "{\"run_id\":\"" + args.run_id +
                            "\",\"last_seq\":" + std::to_string(args.after) + "}");
        }
        // (An `if` each: GCC 12 mishandles co_await inside && and ?:.)
        if (!frames.empty()) {
            bool written = co_await writer.Write(std::move(frames));
            if (!written) co_return;
        }
        if (ended) co_return;
        auto wake = co_await follower->Wait(kHeartbeat);
        if (wake == EventHub::Follower::Wake::kCancelled) co_return;
        if (wake == EventHub::Follower::Wake::kTimeout) {
            bool written = co_await writer.Write(": keep-alive\n\n");
            if (!written) co_return;
        }
    }
}

Awaitable<Response> RunEvents(Service* s, Request request) {
    Response problem;
    const std::string run_id = request.Param("id");
    auto after = QueryInt(request, "after", 0, 0, INT64_MAX, problem);
    if (!after) co_return problem;
    const bool stream = WantsEventStream(request);
    if (std::string last = request.Header("last-event-id"); stream && !last.empty()) {
        int64_t value = 0;
        auto [end, ec] = std::from_chars(last.data(), last.data() + last.size(), value);
        if (ec != std::errc() || end != last.data() + last.size() || value < 0) {
            co_return FieldProblem("Last-Event-ID", "expected the seq of an event");
        }
        *after = value;
    }
    auto limit = QueryInt(request, "limit", stream ? 0 : 1000, 0, 10'000, problem);
    if (!limit) co_return problem;
    auto types = SplitList(request, "type");
    // What is sent is verified first (docs/design/audit.md): the ledger as it stands, then
    // each later event against the chain so far.
    auto verified = co_await s->engine.VerifyRun(run_id);
    if (!verified) co_return ProblemFor(verified.error());
    if (verified->finding) {
        co_return Problem(
            500, "run " + run_id + ": ledger does not verify " + verified->finding->Describe(), {},
            "urn:strowger:problem:ledger-does-not-verify");
    }
    ledger::ChainHead head;
    *after = std::min<int64_t>(*after, static_cast<int64_t>(verified->hashes.size()));
    if (*after > 0) head = {*after, verified->hashes[static_cast<size_t>(*after - 1)]};
    if (stream) {
        EventStreamArgs args{run_id, *after, head, std::move(types)};
        Response response;
        response.content_type = "text/event-stream";
        response.headers.emplace_back("X-Accel-Buffering", "no");
        response.stream = [s, args = std::move(args)](StreamWriter& writer) {
            return StreamRun(s, args, writer);
        };
        co_return response;
    }
    store::EventQuery query;
    query.after_seq = *after;
    auto stored = co_await s->store->ReadEvents(run_id, query);
    if (!stored) co_return ProblemFor(stored.error());
    std::string body = "{\"events\":[";
    int64_t next_after = *after;
    int64_t count = 0;
    for (const auto& event : *stored) {
        if (auto issue = ledger::VerifyNext(head, run_id, event.encoded)) {
            co_return Problem(500,
                              "run " + run_id + ": ledger does not verify at seq " +
                                  std::to_string(issue->seq) + ": " + issue->reason,
                              {}, "urn:strowger:problem:ledger-does-not-verify");
        }
        next_after = event.seq;
        if (!TypeWanted(types, event.type)) continue;
        if (count++ > 0) body += ',';
        body += event.encoded;
        if (*limit > 0 && count >= *limit) break;
    }
    body += "],\"next_after\":" + std::to_string(next_after) + "}";
    co_return RawJsonResponse(200, std::move(body));
}

// GET /api/events: every run's recent events (the hub's ring).
struct AllEventsArgs {
    uint64_t after = 0;
    std::string run_id;
    std::vector<std::string> types;
};

bool KeepRecent(const AllEventsArgs& args, const EventHub::Recent& recent) {
    return (args.run_id.empty() || recent.run_id == args.run_id) &&
           TypeWanted(args.types, recent.type);
}

Awaitable<void> StreamAll(Service* s, AllEventsArgs args, StreamWriter& writer) {
    auto follower = s->hub.Follow("", false);
    while (true) {
        std::string frames;
        if (args.after + 1 < s->hub.first_id()) {
            // Fell behind the ring: say so, and go on from what is there.
            AppendFrame(frames, "", "gap",
                        "{\"missed_after\":" + std::to_string(args.after) +
                            ",\"resumed_at\":" + std::to_string(s->hub.first_id()) + "}");
        }
        auto recent = s->hub.Since(args.after, 1000,
                                   [&](const EventHub::Recent& r) { return KeepRecent(args, r); });
        for (const auto* event : recent)
            AppendFrame(frames, std::to_string(event->id), event->type, event->json);
        args.after = s->hub.last_id();
        // (An `if` each: GCC 12 mishandles co_await inside && and ?:.)
        if (!frames.empty()) {
            bool written = co_await writer.Write(std::move(frames));
            if (!written) co_return;
        }
        auto wake = co_await follower->Wait(kHeartbeat);
        if (wake == EventHub::Follower::Wake::kCancelled) co_return;
        if (wake == EventHub::Follower::Wake::kTimeout) {
            bool written = co_await writer.Write(": keep-alive\n\n");
            if (!written) co_return;
        }
    }
}

Awaitable<Response> AllEvents(Service* s, Request request) {
    Response problem;
    auto after = QueryInt(request, "after", 0, 0, INT64_MAX, problem);
    if (!after) co_return problem;
    auto limit = QueryInt(request, "limit", 1000, 1, 10'000, problem);
    if (!limit) co_return problem;
    AllEventsArgs args;
    args.after = static_cast<uint64_t>(*after);
    args.run_id = request.Query("run_id").value_or("");
    args.types = SplitList(request, "type");
    if (WantsEventStream(request)) {
        if (std::string last = request.Header("last-event-id"); !last.empty()) {
            uint64_t value = 0;
            auto [end, ec] = std::from_chars(last.data(), last.data() + last.size(), value);
            if (ec != std::errc() || end != last.data() + last.size()) {
                co_return FieldProblem("Last-Event-ID", "expected an event id");
            }
            args.after = value;
        } else if (!request.Query("after")) {
            args.after = s->hub.last_id();  // from now on
        }
        Response response;
        response.content_type = "text/event-stream";
        response.stream = [s, args = std::move(args)](StreamWriter& writer) {
            return StreamAll(s, args, writer);
        };
        co_return response;
    }
    auto recent = s->hub.Since(args.after, static_cast<size_t>(*limit),
                               [&](const EventHub::Recent& r) { return KeepRecent(args, r); });
    std::string body = "{\"events\":[";
    for (size_t i = 0; i < recent.size(); ++i) {
        if (i > 0) body += ',';
        body += recent[i]->json;
    }
    uint64_t next = recent.empty() ? std::max<uint64_t>(args.after, 0) : recent.back()->id;
    body += "],\"next_after\":" + std::to_string(next) +
            ",\"first_id\":" + std::to_string(s->hub.first_id()) + "}";
    co_return RawJsonResponse(200, std::move(body));
}

// ---- Control ----

std::string ReasonOf(const json::object& body, std::string fallback) {
    auto reason = JsonString(body, "reason");
    return reason.empty() ? fallback : std::string(reason);
}

Awaitable<Response> Control(Service* s, Request request, store::ControlAction action) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    const bool cancel = action == store::ControlAction::kCancel;
    const std::string run_id = request.Param("id");
    auto result = co_await s->engine.Control(
        run_id, action, ReasonOf(*body, cancel ? "cancelled by operator" : "paused by operator"),
        request.actor);
    if (!result) co_return ProblemFor(result.error());
    json::object out;
    out["run_id"] = run_id;
    out["action"] = cancel ? "cancel" : "pause";
    out["result"] = *result == engine::Engine::ControlResult::kApplied ? "applied" : "requested";
    co_return JsonResponse(202, out);
}

Awaitable<Response> Resume(Service* s, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    const std::string run_id = request.Param("id");
    auto resumed = co_await s->ResumeRun(run_id, ReasonOf(*body, "operator"), request.actor);
    if (!resumed) co_return ProblemFor(resumed.error());
    json::object out;
    out["run_id"] = run_id;
    out["status"] = "running";
    co_return JsonResponse(202, out);
}

Awaitable<Response> Retry(Service* s, Request request, std::string step) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    if (step.empty()) step = std::string(JsonString(*body, "step"));
    const std::string run_id = request.Param("id");
    auto retried = co_await s->RetryRun(run_id, step, request.actor);
    if (!retried) co_return ProblemFor(retried.error());
    json::object out;
    out["run_id"] = run_id;
    out["status"] = "running";
    if (!step.empty()) out["step"] = step;
    co_return JsonResponse(202, out);
}

Awaitable<Response> Rerun(Service* s, Request request) {
    const std::string run_id = request.Param("id");
    auto loaded = co_await s->engine.LoadRun(run_id);
    if (!loaded) co_return ProblemFor(loaded.error());
    engine::StartRequest start;
    start.plan = loaded->plan;
    start.input = loaded->state.input;
    start.rerun_of = run_id;
    start.run_id = NewRunId(s->clock, s->random);
    start.actor = request.actor;
    auto started = co_await s->StartRun(std::move(start));
    if (!started) co_return ProblemFor(started.error());
    if (auto original = co_await s->store->GetRunAnnotation(run_id)) {
        original->run_id = started->run_id;
        original->trigger_source = "rerun";
        original->actor = request.actor;
        (void)co_await s->store->PutRunAnnotation(std::move(*original));
    }
    json::object out;
    out["run_id"] = started->run_id;
    out["rerun_of"] = run_id;
    out["status"] = StatusName(started->status);
    co_return JsonResponse(202, out);
}

// ---- Human tasks ----

// Open tasks of waiting runs, a page of runs at a time (`limit` runs from `cursor`, newest
// first), so that no run is left out however many wait; each run's tasks come from its
// verified ledger (Service::OpenTasks, cached while its head does not move).
Awaitable<Response> ListTasks(Service* s, Request request) {
    const std::string only_run = request.Query("run_id").value_or("");
    const std::string assignee = request.Query("assignee").value_or("");
    Response problem;
    auto limit = QueryInt(request, "limit", 100, 1, 500, problem);
    if (!limit) co_return problem;
    std::vector<store::RunRecord> records;
    std::string next_cursor;
    if (!only_run.empty()) {
        auto record = co_await s->store->GetRun(only_run);
        if (!record) co_return ProblemFor(record.error());
        records.push_back(std::move(*record));
    } else {
        store::RunFilter filter;
        filter.statuses = {RunStatus::kWaiting, RunStatus::kNeedsReconciliation};
        filter.limit = *limit;
        filter.before_run_id = request.Query("cursor").value_or("");
        auto page = co_await s->store->ListRuns(filter);
        if (!page) co_return ProblemFor(page.error());
        records = std::move(page->runs);
        next_cursor = std::move(page->next_cursor);
    }
    json::array tasks;
    for (auto& record : records) {
        auto open = co_await s->OpenTasks(std::move(record));
        if (!open) {
            if (!only_run.empty()) co_return ProblemFor(open.error());
            continue;  // refused runs are not offered for decisions
        }
        for (const auto& value : *open) {
            // Tool approvals and reconciliations name no assignee: any approver may decide.
            const auto& assignees = value.as_object().at("assignees").as_array();
            if (!assignee.empty() && !assignees.empty() &&
                std::find(assignees.begin(), assignees.end(), json::value(assignee)) ==
                    assignees.end()) {
                continue;
            }
            tasks.push_back(value);
        }
    }
    json::object out;
    out["tasks"] = std::move(tasks);
    out["next_cursor"] = std::move(next_cursor);
    co_return JsonResponse(200, out);
}

Awaitable<Response> Decide(Service* s, Request request) {
    Response problem;
    auto body = ParseBody(request, problem);
    if (!body) co_return problem;
    const std::string run_id = request.Param("id");
    const std::string task_id = request.Param("task");
    std::string action(JsonString(*body, "action"));
    if (action != "approve" && action != "reject" && action != "request_changes" &&
        action != "progress") {
        co_return FieldProblem(
            "action", "required: \"approve\", \"reject\", \"request_changes\" or \"progress\"");
    }
    std::string comment(JsonString(*body, "comment"));
    std::string output(JsonString(*body, "output"));
    std::string key(JsonString(*body, "idempotency_key"));
    if (key.empty()) key = request.Header("idempotency-key");
    json::object request_doc;
    request_doc["run_id"] = run_id;
    request_doc["task_id"] = task_id;
    request_doc["action"] = action;
    request_doc["comment"] = comment;
    request_doc["output"] = output;
    const std::string request_sha = Sha256Hex(*CanonicalJson(request_doc));
    if (!key.empty()) {
        if (auto it = s->decisions.find(key); it != s->decisions.end()) {
            if (it->second.request_sha256 != request_sha) {
                co_return Problem(
                    409, "idempotency key \"" + key + "\" was used for another decision",
                    {FieldError{"idempotency_key", "used before with a different body"}},
                    "urn:strowger:problem:idempotency-conflict");
            }
            co_return RawJsonResponse(200, it->second.response);
        }
    }
    // The key goes into the ledger too (human_task.decided), so a retried decision is
    // recognised after a restart as well.
    auto decided =
        co_await s->engine.Decide(run_id, task_id, action, request.actor, comment, output, key);
    if (!decided && decided.error().code() == ErrorCode::kNotFound) {
        // A task that exists but is no longer open was decided already: a conflict, not 404.
        auto loaded = co_await s->engine.LoadRun(run_id);
        if (loaded && loaded->state.FindTask(task_id) != nullptr) {
            co_return Problem(409,
                              "task " + task_id + " of run " + run_id + " was decided already");
        }
    }
    if (!decided) co_return ProblemFor(decided.error());
    // Go on with the run here once nothing else waits for a decision.
    auto loaded = co_await s->engine.LoadRun(run_id);
    std::string status = "waiting";
    if (loaded && loaded->state.OpenTasks().empty()) {
        auto resumed = co_await s->ResumeRun(run_id, "decided", request.actor);
        status = resumed ? "running" : StatusName(loaded->state.status);
    }
    json::object out;
    out["run_id"] = run_id;
    out["task_id"] = *decided;
    out["decision"] = action;
    out["actor"] = request.actor;
    out["status"] = status;
    std::string response = json::serialize(out);
    if (!key.empty()) s->decisions[key] = Service::Decided{request_sha, response};
    co_return RawJsonResponse(200, std::move(response));
}

}  // namespace

void AddRunRoutes(Router& router, Service& service) {
    Service* s = &service;
    RouteTable table(router, "runs");
    const ParamDoc idempotency{"Idempotency-Key", "header", "string",
                               "Same key and same body: the same run; another body: 409"};
    table.Add(
        "POST", "/api/runs", Role::kOperator, "startRun",
        "Start a run of a registered workflow (by id or name, optionally a version)",
        [s](Request r) { return PostRun(s, std::move(r)); },
        {Ok(202, "Created; executing", "RunStarted"),
         Ok(200, "The idempotency key named this run already", "RunStarted"),
         Ok(409, "Idempotency key used with another body", "Problem")},
        {idempotency}, Body("StartRunRequest"));
    table.Add("GET", "/api/runs", Role::kViewer, "listRuns", "List runs, newest first",
              [s](Request r) { return ListRuns(s, std::move(r)); },
              {Ok(200, "A page of runs", "RunPage")},
              {{"workflow", "query", "string", "Workflow id or name"},
               {"status", "query", "string", "Statuses, comma-separated"},
               {"since", "query", "string", "Only runs created at or after this RFC 3339 time"},
               {"trigger_source", "query", "string", "Only runs started with this trigger source"},
               {"limit", "query", "integer", "1-500 (default 50)"},
               {"cursor", "query", "string", "next_cursor of the previous page"}});
    table.Add(
        "GET", "/api/runs/{id}", Role::kViewer, "getRun",
        "A run, verified: {run, node_runs, events}",
        [s](Request r) { return GetRun(s, std::move(r)); },
        {Ok(200, "The run", "RunStatus"), Ok(500, "The run's ledger does not verify", "Problem")});
    table.Add("GET", "/api/runs/{id}/wait", Role::kViewer, "awaitRun",
              "Wait until the run ends or stops (waiting, paused), or the timeout",
              [s](Request r) { return WaitRun(s, std::move(r)); },
              {Ok(200, "The run ended or stopped", "RunRecord"),
               Ok(202, "Still executing at the timeout", "RunState")},
              {{"timeout_ms", "query", "integer", "0-600000 (default 30000)"}});
    table.Add(
        "GET", "/api/runs/{id}/events", Role::kViewer, "runEvents",
        "A run's ledger events (JSON pages by `after`, or text/event-stream resumable with "
        "Last-Event-ID, with model token deltas as transient `delta` events)",
        [s](Request r) { return RunEvents(s, std::move(r)); },
        {Ok(200, "Events (or an event stream)", "EventPage"),
         Ok(500, "The run's ledger does not verify", "Problem")},
        {{"type", "query", "string", "Event types, comma-separated; 'node.' matches a prefix"},
         {"after", "query", "integer", "Only events after this seq"},
         {"limit", "query", "integer", "At most this many events"},
         {"stream", "query", "boolean", "true: text/event-stream (as Accept does)"},
         {"Last-Event-ID", "header", "integer", "Resume a stream after this seq"}});
    table.Add("GET", "/api/events", Role::kViewer, "allEvents",
              "Every run's recent events, for consoles (JSON pages or an event stream)",
              [s](Request r) { return AllEvents(s, std::move(r)); },
              {Ok(200, "Events (or an event stream)", "GlobalEventPage")},
              {{"run_id", "query", "string", "Only this run's"},
               {"type", "query", "string", "Event types, comma-separated"},
               {"after", "query", "integer", "Only events with a larger id"},
               {"limit", "query", "integer", "1-10000 (default 1000)"},
               {"stream", "query", "boolean", "true: text/event-stream"},
               {"Last-Event-ID", "header", "integer", "Resume a stream after this id"}});
    table.Add(
        "POST", "/api/runs/{id}/pause", Role::kOperator, "pauseRun",
        "Pause a run at its next step boundary",
        [s](Request r) { return Control(s, std::move(r), store::ControlAction::kPause); },
        {Ok(202, "Pause applied or requested", "ControlResult"),
         Ok(409, "The run has ended", "Problem")},
        {}, OptionalBody("ReasonRequest"));
    table.Add(
        "POST", "/api/runs/{id}/cancel", Role::kOperator, "cancelRun",
        "Cancel a run (in-flight model calls are aborted)",
        [s](Request r) { return Control(s, std::move(r), store::ControlAction::kCancel); },
        {Ok(202, "Cancel applied or requested", "ControlResult"),
         Ok(409, "The run has ended", "Problem")},
        {}, OptionalBody("ReasonRequest"));
    table.Add(
        "POST", "/api/runs/{id}/resume", Role::kOperator, "resumeRun",
        "Continue a paused or interrupted run in the daemon",
        [s](Request r) { return Resume(s, std::move(r)); },
        {Ok(202, "Executing again", "RunState"),
         Ok(409, "Ended, executing, or waiting for a decision", "Problem")},
        {}, OptionalBody("ReasonRequest"));
    table.Add(
        "POST", "/api/runs/{id}/retry", Role::kOperator, "retryRun",
        "Reopen a finished run from its failed step, or from `step` and everything after it",
        [s](Request r) { return Retry(s, std::move(r), ""); },
        {Ok(202, "Executing again", "RunState"), Ok(409, "The run has not ended", "Problem")}, {},
        OptionalBody("RetryRequest"));
    table.Add("POST", "/api/runs/{id}/rerun", Role::kOperator, "rerunRun",
              "Start a new run with the same input and pinned definition",
              [s](Request r) { return Rerun(s, std::move(r)); },
              {Ok(202, "The new run", "RerunStarted")});
    table.Add(
        "POST", "/api/runs/{id}/nodes/{node}/retry", Role::kOperator, "retryNode",
        "Reopen a finished run from this node and everything after it",
        [s](Request r) {
            std::string node = r.Param("node");
            return Retry(s, std::move(r), std::move(node));
        },
        {Ok(202, "Executing again", "RunState"), Ok(409, "The run has not ended", "Problem")});
    // LibreFang's run controls: the same operations under /api/workflows/runs/{id}/...
    table.Add(
        "POST", "/api/workflows/runs/{id}/pause", Role::kOperator, "pauseWorkflowRun",
        "Pause a run (LibreFang path)",
        [s](Request r) { return Control(s, std::move(r), store::ControlAction::kPause); },
        {Ok(202, "Pause applied or requested", "ControlResult"),
         Ok(409, "The run has ended", "Problem")},
        {}, OptionalBody("ReasonRequest"));
    table.Add(
        "POST", "/api/workflows/runs/{id}/cancel", Role::kOperator, "cancelWorkflowRun",
        "Cancel a run (LibreFang path)",
        [s](Request r) { return Control(s, std::move(r), store::ControlAction::kCancel); },
        {Ok(202, "Cancel applied or requested", "ControlResult"),
         Ok(409, "The run has ended", "Problem")},
        {}, OptionalBody("ReasonRequest"));
    table.Add(
        "POST", "/api/workflows/runs/{id}/resume", Role::kOperator, "resumeWorkflowRun",
        "Resume a run (LibreFang path)", [s](Request r) { return Resume(s, std::move(r)); },
        {Ok(202, "Executing again", "RunState"),
         Ok(409, "Ended, executing, or waiting for a decision", "Problem")},
        {}, OptionalBody("ReasonRequest"));
    table.Add("POST", "/api/workflows/runs/{id}/rerun", Role::kOperator, "rerunWorkflowRun",
              "Rerun a run (LibreFang path)", [s](Request r) { return Rerun(s, std::move(r)); },
              {Ok(202, "The new run", "RerunStarted")});
    table.Add("GET", "/api/tasks", Role::kViewer, "listTasks",
              "Open human tasks (tool approvals, reconciliations) of waiting runs",
              [s](Request r) { return ListTasks(s, std::move(r)); },
              {Ok(200, "Open tasks", "TaskList")},
              {{"assignee", "query", "string",
                "Only tasks this assignee may decide (tasks naming nobody: everyone)"},
               {"run_id", "query", "string", "Only this run's"},
               {"limit", "query", "integer", "Waiting runs per page, 1-500 (default 100)"},
               {"cursor", "query", "string", "next_cursor of the previous page"}});
    table.Add(
        "POST", "/api/runs/{id}/tasks/{task}/decision", Role::kApprover, "decideTask",
        "Approve or reject an open human task; the run continues when none is left",
        [s](Request r) { return Decide(s, std::move(r)); },
        {Ok(200, "Decided", "Decision"),
         Ok(409, "Already decided, or the key was used for another decision", "Problem")},
        {idempotency}, OptionalBody("DecisionRequest"));
}

}  // namespace strowger::api::internal
