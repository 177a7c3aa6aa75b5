// Ledger events (docs/formats/ledger_event_v1.md): types, typed payloads, canonical encoding.
//
// An Event is what is stored: a header (seq, run, time, type, node, attempt), the payload as
// canonical JSON text (`data`), and the chain fields. Payload structs below are the typed form
// the engine builds and the run-state reducer consumes; Encode/Decode convert between them.
//
// Thread-safety: plain values.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/clock.hpp"
#include "core/result.hpp"

namespace strowger::ledger {

inline constexpr int kFormatVersion = 1;
inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// Persisted by name (EventTypeName). Do not rename.
enum class EventType {
    kRunCreated,
    kRunStarted,
    kRunResumed,
    kRunPaused,
    kRunCancelled,
    kRunCompleted,
    kRunFailed,
    kNodeStarted,
    kLlmRequest,
    kLlmResponse,
    kNodeIterationCompleted,
    kNodeCompleted,
    kNodeRetryScheduled,
    kNodeFailed,
    kNodeSkipped,
    kRunRetried,
    kToolCall,
    kToolResult,
    kHumanTaskCreated,
    kHumanTaskDecided,
    kBudgetExceeded,
    kLlmRetried,
    // The DAG form (docs/design/dag.md).
    kNodeSignal,
    kNodeCancelled,
    kRouterDecided,
    kConditionEvaluated,
    kGateEvaluated,
    kMetricEvaluated,
    kHumanTaskCompleted,
    kSubworkflowStarted,
    kItemCompleted,
    kSubworkflowEnded,
    // A standing agent's turn (docs/formats/agents_cron_state_v1.md).
    kSessionCompacted,
    kUnknown,  // a type this version does not know; kept for verification
};

std::string_view EventTypeName(EventType type);
EventType EventTypeFromName(std::string_view name);

// Costs are kept as integer nano-dollars and written as decimal strings ("0.00042").
std::string FormatUsd(int64_t nano_usd);
// The same into `out` (at least kUsdSize bytes); returns the length.
inline constexpr size_t kUsdSize = 32;
size_t FormatUsdTo(char* out, int64_t nano_usd);
Result<int64_t> ParseUsd(std::string_view text);

struct RunCreated {
    std::string workflow;
    std::string definition_sha256;
    std::string input;
    std::string idempotency_key;
    std::string rerun_of;
    // A child run (a subworkflow node's): its parent run and node.
    std::string parent_run;
    std::string parent_node;
    std::string actor;  // who started it (an API token's name); "" = not recorded
    // A child run's share of its parent's budgets, left when it was started: the run stops
    // when it has spent it, as when its own limits are reached. None: no cap.
    std::optional<int64_t> max_tokens;
    std::optional<int64_t> max_cost_nano_usd;
};
struct RunStarted {};
struct RunResumed {
    std::string reason;
    std::string actor;
};
struct RunPaused {
    std::string reason;
    std::string actor;
};
struct RunCancelled {
    std::string reason;
    std::string actor;
};
// A finished run is reopened: the listed nodes start again (attempt numbers continue).
struct RunRetried {
    std::string from_step;             // "" = the failed step(s)
    std::vector<std::string> cleared;  // nodes reset to pending
    std::string actor;
};
struct RunCompleted {
    std::string output;
};
struct RunFailed {
    std::string error;
    std::string code;
    std::string node;
};
struct NodeStarted {
    int64_t iteration = 0;  // 0 = not a loop
};
struct LlmRequest {
    std::string provider;
    std::string model;
    std::string system_prompt;
    std::string prompt;
    int64_t turn = 1;
    // A call inside a node that makes several (a debate's "round 2/ProPython"): its answer is
    // reused by a later attempt of the node instead of calling again.
    std::string label;
};
struct ToolCallRequest {
    std::string id;
    std::string name;
    std::string arguments;  // JSON text as the model wrote it
};
struct LlmResponse {
    std::string content;
    std::vector<ToolCallRequest> tool_calls;
    int64_t tokens_in = 0;
    int64_t tokens_out = 0;
    int64_t cost_nano_usd = 0;
    int64_t latency_ms = 0;
    std::string finish_reason;
    int64_t turn = 1;
    std::string label;  // as its llm.request's
};
struct NodeIterationCompleted {
    int64_t iteration = 1;
    std::string output;
    int64_t tokens_in = 0;
    int64_t tokens_out = 0;
    int64_t duration_ms = 0;
};
struct NodeCompleted {
    std::string output;
    int64_t tokens_in = 0;
    int64_t tokens_out = 0;
    int64_t duration_ms = 0;
    int64_t iterations = 0;  // loops only
    // DAG: the signal (a router's branch, a condition's "true"/"false", ...) that decides
    // which outgoing edges carry.
    std::string signal;
    // DAG: what the node's type tells about how it decided (a vote's counts), JSON.
    std::string detail;
};
struct NodeRetryScheduled {
    std::string error;
    std::string code;
    int64_t delay_ms = 0;
    SystemTime due;
    int64_t iteration = 0;
};
struct NodeFailed {
    std::string error;
    std::string code;
};
struct NodeSkipped {
    std::string reason;  // "condition_not_met" | "error"
    std::string error;
};
// A tool call about to run (committed before it starts).
struct ToolCall {
    std::string call_id;
    std::string tool;
    std::string arguments;
    std::string idempotency_key;
    std::string safety;  // SafetyClassName
    int64_t turn = 1;
};
struct ToolResult {
    std::string call_id;
    std::string content;
    bool is_error = false;
    int64_t duration_ms = 0;
};
// What a human_task node asks (kind "task"); rare, so held apart.
struct TaskDetails {
    std::string description;
    std::vector<std::string> assignees;
    std::string approval_mode = "single";  // "single" | "quorum"
    int64_t required_count = 1;
    std::optional<SystemTime> due;  // timeout_ms after creation
    std::string on_timeout;         // "proceed_with_default" | "fail" | "reject"
    std::string default_signal;
    std::string default_output;
};
// A decision a human must make: approving a tool call, reconciling a step interrupted after
// a non-idempotent tool call, or a human_task node's task.
struct HumanTaskCreated {
    std::string task_id;
    std::string kind;  // "tool_approval" | "reconciliation" | "task"
    std::string title;
    std::string call_id;                         // tool_approval
    std::string tool;                            // tool_approval
    std::string arguments;                       // tool_approval
    std::shared_ptr<const TaskDetails> details;  // task
};
struct HumanTaskDecided {
    std::string task_id;
    // "approve" | "reject"; a task also "request_changes" | "progress".
    std::string decision;
    std::string actor;
    std::string comment;
    std::string output;           // reconciliation: an output to accept instead of running again
    std::string idempotency_key;  // the same key twice records one decision
};
struct BudgetExceeded {
    std::string scope;  // "step" | "run" | "agent_hour"
    std::string limit;  // "tokens" | "cost_usd" | "tool_calls" | "tokens_per_hour"
    std::string used;
    std::string max;
};
// A model call's try that failed and was tried again by the provider layer (429, 5xx, a
// dropped connection; see providers::ResilientProvider). Recorded with the call's outcome,
// before its llm.response (or the step's failure): the ledger shows every try, not only the
// last.
struct LlmRetried {
    int64_t turn = 1;
    int64_t try_number = 1;  // the try that failed, from 1
    std::string error;
    std::string code;         // ErrorCodeName
    int64_t http_status = 0;  // 0: none (not an HTTP answer)
    int64_t delay_ms = 0;     // waited before the next try (Retry-After or backoff)
};
// ---- The DAG form (docs/design/dag.md). ----
// A node's policy turned its failure into a signal (on_error: emit_signal), or a decision of
// its own emitted one.
struct NodeSignal {
    std::string signal;
    std::string reason;
};
// A node stopped before it finished: a join fired without it, or a fail_fast join failed.
struct NodeCancelled {
    std::string reason;
};
struct RouterDecided {
    std::string strategy;  // rule | random | llm
    std::string branch;
    std::string reason;  // the rule that matched, the draw, the model's answer
    bool fallback = false;
};
struct ConditionEvaluated {
    std::string left;
    std::string op;
    std::string right;
    bool result = false;
};
struct GateEvaluated {
    std::string criterion;
    std::string method;  // contains | regex | json_path | judge
    bool passed = false;
    std::string detail;
};
struct MetricEvaluated {
    std::string metric;
    std::string value;
    std::string bound;  // min | max
    std::string threshold;
    bool passed = false;
};
// A human_task's task is settled (decided, quorum reached, or timed out).
struct HumanTaskCompleted {
    std::string task_id;
    std::string signal;  // approved | rejected | request_changes | the timeout's
    std::string output;
    std::string reason;  // decided | timeout
};
// A subworkflow node created its child run (before starting it).
struct SubworkflowStarted {
    std::string child_run_id;
    std::string workflow;
    std::string definition_sha256;
    int64_t index = -1;  // a for_each item's child: the item's index; -1: the node's child
    // The child's caps, reserved from this run's budgets while it runs (as in its run.created).
    std::optional<int64_t> max_tokens;
    std::optional<int64_t> max_cost_nano_usd;
};
// A subworkflow node's child run ended: what it spent, charged to this run's budgets.
struct SubworkflowEnded {
    std::string child_run_id;
    std::string status;
    int64_t tokens_in = 0;
    int64_t tokens_out = 0;
    int64_t cost_nano_usd = 0;
    int64_t index = -1;  // as in SubworkflowStarted
};
// A for_each item's branch finished.
struct ItemCompleted {
    int64_t index = 0;
    std::string output;
    bool failed = false;
    std::string error;
};

// A standing agent's session was compacted before this turn: its oldest messages were folded
// into the summary the turn was given.
struct SessionCompacted {
    std::string session_id;
    int64_t dropped_messages = 0;
    int64_t dropped_tokens = 0;
    int64_t kept_messages = 0;
    int64_t kept_tokens = 0;
    int64_t max_history_tokens = 0;
    std::string summary_sha256;  // of the summary the turn got
};

// A type this version does not know: its data is kept as is.
struct UnknownPayload {
    std::string type;
    std::string data;  // canonical JSON as stored
};

using Payload =
    std::variant<RunCreated, RunStarted, RunResumed, RunPaused, RunCancelled, RunCompleted,
                 RunFailed, NodeStarted, LlmRequest, LlmResponse, NodeIterationCompleted,
                 NodeCompleted, NodeRetryScheduled, NodeFailed, NodeSkipped, RunRetried, ToolCall,
                 ToolResult, HumanTaskCreated, HumanTaskDecided, BudgetExceeded, LlmRetried,
                 NodeSignal, NodeCancelled, RouterDecided, ConditionEvaluated, GateEvaluated,
                 MetricEvaluated, HumanTaskCompleted, SubworkflowStarted, ItemCompleted,
                 SubworkflowEnded, SessionCompacted, UnknownPayload>;

EventType TypeOf(const Payload& payload);

// Calls `edit(text)` on every free-text field of `payload` (inputs, prompts, outputs, errors,
// reasons) — not on identifiers, codes or hashes. Used to redact secrets before an event is
// sealed, so they never reach the ledger.
void ForEachText(Payload& payload, const std::function<void(std::string&)>& edit);

// An event before it joins the chain: what the engine appends.
struct NewEvent {
    std::string node;     // empty: none
    int64_t attempt = 0;  // 0: none
    Payload payload;
};

// A stored event. Events made by Seal leave `run_id`, `prev_hash` and `data` empty (they are
// in `encoded`, and the writer has them); DecodeEvent fills every field.
struct Event {
    int64_t seq = 0;
    std::string run_id;
    SystemTime time;
    EventType type = EventType::kUnknown;
    std::string type_name;  // as stored (for kUnknown)
    std::string node;
    int64_t attempt = 0;
    std::string data;  // canonical JSON object
    std::string prev_hash;
    std::string hash;
    // The canonical encoding of the whole event including `hash`: the stored/exported line.
    std::string encoded;
    // Where Seal wrote the values of "hash", "prev_hash" and "run_id" in `encoded` (0: not
    // known, as for a decoded event). A store may use them to find those values fast.
    uint32_t hash_at = 0;
    uint32_t prev_hash_at = 0;
    uint32_t run_id_at = 0;
    // Set by Seal: `encoded` is the canonical encoding of the header fields above, the run id
    // and previous hash at run_id_at and prev_hash_at, around the data object, with type_name
    // and node written as they are (nothing to escape). A store may then keep the data object
    // and rebuild the rest from those fields.
    bool rebuildable = false;
    std::array<unsigned char, 32> digest{};  // `hash` in binary, when set by Seal
};

// Encodes a payload as canonical JSON (the `data` member).
std::string EncodePayload(const Payload& payload);
void AppendPayload(std::string& out, const Payload& payload);
// Decodes `data` of an event of `type`.
Result<Payload> DecodePayload(EventType type, std::string_view type_name, std::string_view data);

// Canonical encoding of the event; without the hash member when `hash` is empty.
std::string EncodeEvent(int64_t seq, std::string_view run_id, SystemTime time,
                        std::string_view type_name, std::string_view node, int64_t attempt,
                        std::string_view data, std::string_view prev_hash, std::string_view hash);

// Where EncodeEventWithHashSlot put things in the line.
struct EventOffsets {
    size_t hash = 0;       // the 64 characters of the hash slot
    size_t prev_hash = 0;  // the value of "prev_hash" (0 if it needed escaping)
    size_t run_id = 0;     // the value of "run_id" (0 if it needed escaping)
    bool plain = false;    // no header string needed escaping: all were written as they are
};

// As EncodeEvent with a `"hash":"…"` member whose 64 characters, starting at offsets->hash,
// are left for the caller to fill in. The encoding without the hash member is
// line[0, offsets->hash - 9) + line[offsets->hash + 65, end).
std::string EncodeEventWithHashSlot(int64_t seq, std::string_view run_id, SystemTime time,
                                    std::string_view type_name, std::string_view node,
                                    int64_t attempt, std::string_view data,
                                    std::string_view prev_hash, EventOffsets* offsets);
// The same, appended to `out`.
void AppendEventWithHashSlot(std::string& out, int64_t seq, std::string_view run_id,
                             SystemTime time, std::string_view type_name, std::string_view node,
                             int64_t attempt, std::string_view data, std::string_view prev_hash,
                             EventOffsets* offsets);

// Parses a stored line (canonical JSON with hash). Fails with kDataLoss if the bytes are not
// the canonical encoding of a version-1 event.
Result<Event> DecodeEvent(std::string_view line);

}  // namespace strowger::ledger
