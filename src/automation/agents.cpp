#include "automation/agents.hpp"

#include <toml++/toml.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "automation/cron_spec.hpp"
#include "automation/manifest_fields.hpp"
#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/sha256.hpp"
#include "core/strings.hpp"
#include "core/yaml.hpp"
#include "model/loader.hpp"
#include "model/plan.hpp"

namespace strowger::automation {
namespace {

namespace fs = std::filesystem;
using model::Diagnostic;

constexpr size_t kSummaryLineChars = 160;

Diagnostic Error(const std::string& file, int line, int column, std::string path,
                 std::string message) {
    Diagnostic d;
    d.pos = {file, line, column};
    d.path = std::move(path);
    d.message = std::move(message);
    return d;
}

Diagnostic ErrorAt(const std::string& file, const toml::node* node, std::string path,
                   std::string message) {
    int line = 0;
    int column = 0;
    if (node != nullptr) {
        line = static_cast<int>(node->source().begin.line);
        column = static_cast<int>(node->source().begin.column);
    }
    return Error(file, line, column, std::move(path), std::move(message));
}

bool ValidSessionMode(std::string_view mode) {
    return mode.empty() || mode == "persistent" || mode == "new";
}

// A field of a TOML table: a string, an integer, a float or a list of strings, with errors
// naming the file, line:column and field.
class TomlReader {
  public:
    TomlReader(const std::string& file, ManifestSet& out) : file_(file), out_(out) {}

    void Keys(const toml::table& table, const std::string& path,
              std::initializer_list<std::string_view> known) {
        for (const auto& [key, value] : table) {
            std::string_view k = key.str();
            if (std::find(known.begin(), known.end(), k) != known.end()) continue;
            std::vector<std::string_view> candidates(known.begin(), known.end());
            std::string hint = ClosestMatch(k, candidates);
            out_.diagnostics.push_back(
                ErrorAt(file_, &value, path.empty() ? std::string(k) : path + "." + std::string(k),
                        "unknown field" +
                            (hint.empty() ? std::string() : " (did you mean " + hint + "?)")));
        }
    }
    std::optional<std::string> String(const toml::table& table, std::string_view key,
                                      const std::string& path) {
        const toml::node* node = table.get(key);
        if (node == nullptr) return std::nullopt;
        if (auto v = node->value<std::string>()) return *v;
        Bad(node, path, key, "expected a string");
        return std::nullopt;
    }
    std::optional<int64_t> Int(const toml::table& table, std::string_view key,
                               const std::string& path) {
        const toml::node* node = table.get(key);
        if (node == nullptr) return std::nullopt;
        if (node->is_integer()) return node->value<int64_t>();
        Bad(node, path, key, "expected a whole number");
        return std::nullopt;
    }
    std::optional<double> Double(const toml::table& table, std::string_view key,
                                 const std::string& path) {
        const toml::node* node = table.get(key);
        if (node == nullptr) return std::nullopt;
        if (node->is_number()) return node->value<double>();
        Bad(node, path, key, "expected a number");
        return std::nullopt;
    }
    std::optional<std::vector<std::string>> Strings(const toml::table& table, std::string_view key,
                                                    const std::string& path) {
        const toml::node* node = table.get(key);
        if (node == nullptr) return std::nullopt;
        const auto* array = node->as_array();
        std::vector<std::string> out;
        if (array != nullptr) {
            for (const auto& item : *array) {
                auto v = item.value<std::string>();
                if (!v) {
                    Bad(&item, path, key, "expected a list of strings");
                    return std::nullopt;
                }
                out.push_back(*v);
            }
            return out;
        }
        Bad(node, path, key, "expected a list of strings");
        return std::nullopt;
    }
    void Bad(const toml::node* node, const std::string& path, std::string_view key,
             std::string message) {
        out_.diagnostics.push_back(
            ErrorAt(file_, node, path.empty() ? std::string(key) : path + "." + std::string(key),
                    std::move(message)));
    }

  private:
    const std::string& file_;
    ManifestSet& out_;
};

Result<std::string> ReadText(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return NotFoundError("cannot read " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

bool HasManifestExtension(const fs::path& path) {
    auto ext = path.extension().string();
    return ext == ".toml" || ext == ".yaml" || ext == ".yml" || ext == ".json";
}

// A YAML/JSON agent file, read by the workflow loader (the agent fields of workflow.md) through
// a workflow that names it.
void LoadYamlAgent(const fs::path& path, ManifestSet& out, SystemTime now) {
    std::string name = path.stem().string();
    // The standing-agent fields (session_mode, max_history_tokens, cron) are the manifest's,
    // not the agent format's: read here, and the loader's "unknown field" for them dropped.
    internal::FieldDoc standing;
    standing.file = path.string();
    if (auto text = ReadText(path.string()); text) {
        if (auto tree = ParseYamlTree(*text)) {
            standing = internal::StandingFieldsFromYaml(tree->root(), path.string());
        }  // a syntax error: the loader reports it
    }
    model::LoadOptions options;
    options.sibling_agents = false;
    // Only this file: a directory of its own would do, but the loader takes directories; the
    // agent is found by name among those it reads.
    options.agent_dirs = {path.parent_path().string()};
    json::object step{{"name", "turn"}, {"agent_name", name}, {"prompt", "{{input}}"}};
    json::object wrapper{{"name", "agent:" + name}, {"steps", json::array{step}}};
    auto loaded = model::LoadWorkflowText(JsonText(wrapper), path.string(),
                                          path.parent_path().string(), options);
    bool failed = false;
    for (auto& d : loaded.diagnostics) {
        // Only what concerns this file (other agent files report themselves).
        if (d.pos.file != path.string() &&
            d.pos.file.find(path.filename().string()) == std::string::npos) {
            continue;
        }
        if (StartsWith(d.message, "unknown field") && StartsWith(d.path, "agents." + name + ".") &&
            standing.root.contains(d.path.substr(("agents." + name + ".").size()))) {
            continue;
        }
        if (d.severity == Diagnostic::Severity::kError) failed = true;
        out.diagnostics.push_back(std::move(d));
    }
    if (failed) return;
    const model::AgentSpec* spec = nullptr;
    for (const auto& agent : loaded.workflow.agents) {
        if (agent.pos.file == path.string() || agent.name == name) spec = &agent;
    }
    if (spec == nullptr) {
        out.diagnostics.push_back(Error(path.string(), 1, 1, "", "no agent read from this file"));
        return;
    }
    AgentManifest manifest;
    manifest.name = spec->name;
    manifest.file = path.string();
    manifest.spec = *spec;
    size_t errors = out.diagnostics.size();
    internal::ReadStandingFields(standing, manifest, out.diagnostics, now);
    if (out.diagnostics.size() != errors) return;
    out.agents.push_back(std::move(manifest));
}

}  // namespace

int64_t EstimateTokens(std::string_view text) {
    return static_cast<int64_t>((text.size() + 3) / 4);
}

ManifestSet ParseTomlManifest(std::string_view text, const std::string& file, SystemTime now) {
    if (now == SystemTime{}) now = std::chrono::system_clock::now();
    ManifestSet out;
    toml::table root;
    try {
        root = toml::parse(text, file);
    } catch (const toml::parse_error& e) {
        out.diagnostics.push_back(Error(file, static_cast<int>(e.source().begin.line),
                                        static_cast<int>(e.source().begin.column), "",
                                        std::string(e.description())));
        return out;
    }
    TomlReader r(file, out);
    r.Keys(root, "",
           {"name", "description", "version", "author", "module", "session_mode",
            "max_history_tokens", "model", "system_prompt", "tools", "max_turns", "capabilities",
            "resources", "cron", "id"});
    AgentManifest m;
    m.file = file;
    m.spec.pos = {file, 1, 1};
    m.spec.base_dir = fs::path(file).parent_path().string();
    if (auto v = r.String(root, "name", "")) m.name = *v;
    if (m.name.empty()) m.name = fs::path(file).stem().string();
    m.spec.name = m.name;
    if (auto v = r.String(root, "id", "")) m.spec.id = *v;
    if (auto v = r.String(root, "description", "")) m.spec.description = *v;
    if (auto v = r.Int(root, "max_turns", "")) m.spec.max_turns = *v;
    if (auto v = r.String(root, "system_prompt", "")) m.spec.system_prompt = *v;
    if (auto v = r.Strings(root, "tools", "")) m.spec.tools = *v;
    // `model` is "provider:model", or LibreFang's [model] table.
    if (const toml::node* model = root.get("model")) {
        if (auto written = model->value<std::string>()) {
            m.spec.model = *written;
        } else if (const auto* t = model->as_table()) {
            r.Keys(*t, "model",
                   {"provider", "model", "system_prompt", "temperature", "max_tokens",
                    "api_key_env", "base_url"});
            std::string provider = r.String(*t, "provider", "model").value_or("");
            std::string name = r.String(*t, "model", "model").value_or("");
            m.spec.model = provider.empty() || name.find(':') != std::string::npos
                               ? name
                               : provider + ":" + name;
            if (auto v = r.String(*t, "system_prompt", "model")) m.spec.system_prompt = *v;
            if (auto v = r.Double(*t, "temperature", "model")) m.spec.temperature = *v;
            if (auto v = r.Int(*t, "max_tokens", "model")) m.spec.max_output_tokens = *v;
        } else {
            r.Bad(model, "", "model", "expected \"provider:model\" or a [model] table");
        }
    }
    if (m.spec.model.empty()) {
        out.diagnostics.push_back(Error(file, 1, 1, "model", "an agent needs a model"));
    }
    if (const auto* caps = root["capabilities"].as_table()) {
        r.Keys(*caps, "capabilities",
               {"tools", "network", "shell", "memory_read", "memory_write", "agent_spawn",
                "agent_message", "ofp_discover"});
        if (auto v = r.Strings(*caps, "tools", "capabilities")) m.spec.tools = *v;
    }
    if (const auto* res = root["resources"].as_table()) {
        if (auto v = r.Int(*res, "max_llm_tokens_per_hour", "resources")) {
            m.spec.limits.max_tokens_per_hour = *v;
        }
    }
    // session_mode, max_history_tokens and [[cron]]: as in every manifest.
    internal::ReadStandingFields(internal::StandingFieldsFromToml(root, file), m, out.diagnostics,
                                 now);
    if (out.ok()) out.agents.push_back(std::move(m));
    return out;
}

ManifestSet LoadManifests(const std::string& dir, const model::CompileOptions& compile,
                          SystemTime now) {
    if (now == SystemTime{}) now = std::chrono::system_clock::now();
    ManifestSet out;
    std::error_code ec;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (entry.is_regular_file() && HasManifestExtension(entry.path())) {
            files.push_back(entry.path());
        }
    }
    if (ec) {
        out.diagnostics.push_back(Error(dir, 0, 0, "", "cannot read directory: " + ec.message()));
        return out;
    }
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
        ManifestSet one;
        if (path.extension() == ".toml") {
            std::string text;
            if (auto read = ReadText(path.string()); read) {
                text = std::move(*read);
            } else {
                one.diagnostics.push_back(Error(path.string(), 0, 0, "", read.error().message()));
            }
            if (one.ok()) one = ParseTomlManifest(text, path.string(), now);
        } else {
            LoadYamlAgent(path, one, now);
        }
        for (auto& agent : one.agents) {
            // The turn's workflow must compile (model, tools, limits).
            auto compiled = model::Compile(TurnWorkflow(agent.spec, "", {}), compile);
            bool failed = false;
            for (auto& d : compiled.diagnostics) {
                if (d.severity == Diagnostic::Severity::kError) failed = true;
                if (d.pos.file.empty()) d.pos = agent.spec.pos;
                one.diagnostics.push_back(std::move(d));
            }
            for (const auto& other : out.agents) {
                if (other.name == agent.name) {
                    one.diagnostics.push_back(
                        Error(path.string(), 1, 1, "name",
                              "agent \"" + agent.name + "\" is also defined in " + other.file));
                    failed = true;
                }
            }
            if (!failed) out.agents.push_back(std::move(agent));
        }
        for (auto& d : one.diagnostics) out.diagnostics.push_back(std::move(d));
    }
    return out;
}

model::Workflow TurnWorkflow(const model::AgentSpec& spec, const std::string& model_override,
                             std::chrono::seconds timeout) {
    model::Workflow w;
    w.name = "agent:" + spec.name;
    w.description = spec.description;
    w.session = true;
    w.base_dir = spec.base_dir;
    w.source_file = spec.pos.file;
    model::AgentSpec agent = spec;
    if (!model_override.empty()) agent.model = model_override;
    w.agents.push_back(std::move(agent));
    for (const char* name : {"message", "summary", "session_id"}) {
        model::InputSpec input;
        input.name = name;
        input.required = std::string_view(name) == "message";
        w.inputs.push_back(input);
    }
    model::InputSpec history;
    history.name = "history";
    history.type = "array";
    w.inputs.push_back(history);
    model::InputSpec compaction;
    compaction.name = "compaction";
    compaction.type = "object";
    w.inputs.push_back(compaction);
    model::InputSpec silent;
    silent.name = "silent";
    silent.type = "boolean";
    w.inputs.push_back(silent);
    model::StepSpec step;
    step.name = "turn";
    step.agent_name = spec.name;
    step.prompt = "{{message}}";
    if (timeout.count() > 0) step.timeout_ms = timeout.count() * 1000;
    w.steps.push_back(std::move(step));
    return w;
}

Compaction Compact(const std::vector<store::SessionMessage>& messages, std::string summary,
                   std::string_view message, int64_t max_history_tokens) {
    Compaction c;
    c.summary = std::move(summary);
    size_t first = 0;
    int64_t kept_tokens = 0;
    for (const auto& m : messages) kept_tokens += m.tokens;
    const size_t summary_cap = static_cast<size_t>(std::max<int64_t>(max_history_tokens, 0));
    auto over = [&] {
        return kept_tokens + EstimateTokens(c.summary) + EstimateTokens(message) >
               max_history_tokens;
    };
    while (first < messages.size() && over()) {
        // Whole exchanges: a user message goes with the reply after it.
        size_t end = first + 1;
        if (messages[first].role == "user" && end < messages.size() &&
            messages[end].role == "assistant") {
            ++end;
        }
        for (size_t i = first; i < end; ++i) {
            const auto& m = messages[i];
            std::string line = m.role + ": " + Preview(m.content, kSummaryLineChars);
            for (char& ch : line) {
                if (ch == '\n') ch = ' ';
            }
            if (!c.summary.empty()) c.summary += '\n';
            c.summary += line;
            kept_tokens -= m.tokens;
            c.dropped_tokens += m.tokens;
            ++c.dropped_messages;
            c.drop_through = m.seq;
        }
        // The summary keeps its newest lines, within a quarter of the bound (in tokens).
        if (c.summary.size() > summary_cap) {
            size_t cut = c.summary.size() - summary_cap;
            size_t line = c.summary.find('\n', cut);
            c.summary =
                line == std::string::npos ? c.summary.substr(cut) : c.summary.substr(line + 1);
        }
        first = end;
    }
    c.kept.assign(messages.begin() + static_cast<std::ptrdiff_t>(first), messages.end());
    c.kept_tokens = kept_tokens;
    return c;
}

Awaitable<Result<RunEnd>> ReadRunEnd(store::Store& store, std::string run_id) {
    STROWGER_CO_ASSIGN_OR_RETURN(auto record, co_await store.GetRun(run_id));
    RunEnd end;
    end.status = record.status;
    store::EventQuery last;
    last.after_seq = std::max<int64_t>(record.head.seq - 1, 0);
    STROWGER_CO_ASSIGN_OR_RETURN(auto events, co_await store.ReadEvents(run_id, last));
    if (!events.empty()) {
        auto decoded = ledger::DecodeEvent(events.back().encoded);
        if (decoded) {
            auto payload = ledger::DecodePayload(decoded->type, decoded->type_name, decoded->data);
            if (payload) {
                if (const auto* done = std::get_if<ledger::RunCompleted>(&*payload)) {
                    end.output = done->output;
                } else if (const auto* failed = std::get_if<ledger::RunFailed>(&*payload)) {
                    end.error = failed->error;
                }
            }
        }
    }
    co_return end;
}

AgentTurns::AgentTurns(Executor executor, std::shared_ptr<store::Store> store,
                       model::CompileOptions compile, RunHooks hooks, Clock& clock, Random& random)
    : executor_(std::move(executor)),
      store_(std::move(store)),
      compile_(std::move(compile)),
      hooks_(std::move(hooks)),
      clock_(clock),
      random_(random) {}

void AgentTurns::SetManifests(std::vector<AgentManifest> manifests) {
    manifests_.clear();
    plans_.clear();
    for (auto& m : manifests) {
        std::string name = m.name;
        manifests_.emplace(std::move(name), std::move(m));
    }
}

const AgentManifest* AgentTurns::Find(std::string_view name_or_id) const {
    if (auto it = manifests_.find(name_or_id); it != manifests_.end()) return &it->second;
    for (const auto& [name, m] : manifests_) {
        if (!m.spec.id.empty() && m.spec.id == name_or_id) return &m;
    }
    return nullptr;
}

Result<std::shared_ptr<const model::Plan>> AgentTurns::PlanFor(const AgentManifest& manifest,
                                                               const std::string& model_override,
                                                               std::chrono::seconds timeout) {
    std::string key =
        manifest.name + '\n' + model_override + '\n' + std::to_string(timeout.count());
    if (auto it = plans_.find(key); it != plans_.end()) return it->second;
    auto compiled = model::Compile(TurnWorkflow(manifest.spec, model_override, timeout), compile_);
    if (!compiled.ok()) {
        std::string message;
        for (const auto& d : compiled.diagnostics) {
            if (d.severity != Diagnostic::Severity::kError) continue;
            if (!message.empty()) message += "; ";
            message += d.ToString();
        }
        return InvalidArgumentError("agent " + manifest.name + ": " + message);
    }
    plans_[key] = compiled.plan;
    return compiled.plan;
}

Awaitable<Result<AgentTurns::Started>> AgentTurns::Send(AgentMessage message,
                                                        std::string idempotency_key) {
    const AgentManifest* found = Find(message.agent);
    if (found == nullptr) co_return NotFoundError("no agent named " + message.agent);
    // A copy: a reload (SIGHUP) may replace the manifests while this turn waits on the store.
    const auto manifest = std::make_shared<const AgentManifest>(*found);
    if (!ValidSessionMode(message.session_mode)) {
        co_return InvalidArgumentError("session_mode must be \"persistent\" or \"new\", not \"" +
                                       message.session_mode + "\"");
    }
    Started started;
    if (!idempotency_key.empty()) {
        auto existing = co_await store_->FindByIdempotencyKey(idempotency_key);
        if (existing) {
            started.run_id = *existing;
            started.existing = true;
            co_return started;
        }
    }
    // Precedence: the message's (a cron job's) mode, else the manifest's, else persistent.
    std::string mode = !message.session_mode.empty()     ? message.session_mode
                       : !manifest->session_mode.empty() ? manifest->session_mode
                                                         : "persistent";
    std::string channel = message.channel.empty() ? "api" : message.channel;
    STROWGER_CO_ASSIGN_OR_RETURN(auto plan,
                                 PlanFor(*manifest, message.model_override, message.timeout));
    store::AgentSession wanted;
    wanted.session_id = "ses_" + NewRunId(clock_, random_);
    wanted.agent = manifest->name;
    wanted.channel = channel;
    wanted.mode = mode;
    wanted.created_at = wanted.updated_at = clock_.Now();
    STROWGER_CO_ASSIGN_OR_RETURN(auto session, co_await store_->OpenSession(wanted));
    STROWGER_CO_ASSIGN_OR_RETURN(auto history,
                                 co_await store_->ReadSessionMessages(session.session_id));

    std::string text = message.text;
    started.silent = StartsWith(text, kSilentMarker);
    if (started.silent) text = std::string(Trim(text.substr(kSilentMarker.size())));
    Compaction c = Compact(history, session.summary, text, manifest->max_history_tokens);

    json::object input;
    input["message"] = text;
    input["session_id"] = session.session_id;
    if (!c.summary.empty()) input["summary"] = c.summary;
    json::array past;
    for (const auto& m : c.kept)
        past.push_back(json::object{{"role", m.role}, {"content", m.content}});
    input["history"] = std::move(past);
    if (started.silent) input["silent"] = true;
    if (c.dropped_messages > 0) {
        input["compaction"] = json::object{
            {"dropped_messages", c.dropped_messages},
            {"dropped_tokens", c.dropped_tokens},
            {"kept_messages", static_cast<int64_t>(c.kept.size())},
            {"kept_tokens", c.kept_tokens},
            {"max_history_tokens", manifest->max_history_tokens},
            {"summary_sha256", Sha256Hex(c.summary)},
        };
    }

    engine::StartRequest request;
    request.plan = plan;
    STROWGER_CO_ASSIGN_OR_RETURN(request.input, CanonicalJson(json::value(std::move(input))));
    request.idempotency_key = idempotency_key;
    request.run_id = NewRunId(clock_, random_);
    request.actor = message.origin.kind.empty() ? "agent" : message.origin.kind;

    // The turn is recorded before its run exists, and the compaction stored, so that a crash
    // anywhere leaves a turn the next start finishes (or drops, if its run was never made).
    store::AgentTurn turn;
    turn.run_id = request.run_id;
    turn.session_id = session.session_id;
    turn.agent = manifest->name;
    turn.message = text;
    turn.silent = started.silent;
    turn.created_at = clock_.Now();
    STROWGER_CO_TRY(co_await store_->PutAgentTurn(turn));
    if (c.dropped_messages > 0) {
        store::SessionUpdate update;
        update.session_id = session.session_id;
        update.drop_through = c.drop_through;
        update.set_summary = true;
        update.summary = c.summary;
        update.at = clock_.Now();
        STROWGER_CO_TRY(co_await store_->UpdateSession(update));
    }
    auto run_id = co_await hooks_.start(std::move(request));
    if (!run_id) {
        store::SessionUpdate drop;
        drop.session_id = session.session_id;
        drop.finish_run_id = turn.run_id;
        drop.at = clock_.Now();
        (void)co_await store_->UpdateSession(drop);
        co_return std::unexpected(run_id.error());
    }
    if (*run_id != turn.run_id) {
        // The idempotency key named an earlier run: this turn is that one.
        store::SessionUpdate drop;
        drop.session_id = session.session_id;
        drop.finish_run_id = turn.run_id;
        drop.at = clock_.Now();
        (void)co_await store_->UpdateSession(drop);
        started.run_id = *run_id;
        started.existing = true;
        co_return started;
    }
    started.run_id = *run_id;
    started.session_id = session.session_id;
    ++in_flight_;
    finishing_[turn.run_id] = std::make_shared<asio::steady_timer>(
        executor_, std::chrono::steady_clock::time_point::max());
    asio::co_spawn(executor_, Finish(std::move(turn)), asio::detached);
    co_return started;
}

Awaitable<Result<RunEnd>> AgentTurns::Wait(std::string run_id) {
    auto end = co_await hooks_.wait(run_id);
    if (auto it = finishing_.find(run_id); it != finishing_.end()) {
        auto done = it->second;
        co_await done->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return end;
}

Awaitable<void> AgentTurns::Finish(store::AgentTurn turn) {
    auto end = co_await hooks_.wait(turn.run_id);
    store::SessionUpdate update;
    update.session_id = turn.session_id;
    update.finish_run_id = turn.run_id;
    update.at = clock_.Now();
    if (end && end->status == ledger::RunStatus::kCompleted && !turn.silent) {
        update.append.push_back(
            {0, "user", turn.message, EstimateTokens(turn.message), turn.run_id});
        update.append.push_back(
            {0, "assistant", end->output, EstimateTokens(end->output), turn.run_id});
    }
    if (!end && end.error().code() != ErrorCode::kNotFound) {
        spdlog::warn("agent turn {}: {}", turn.run_id, end.error().message());
    } else if (auto done = co_await store_->UpdateSession(update); !done) {
        spdlog::warn("agent turn {}: cannot update session {}: {}", turn.run_id, turn.session_id,
                     done.error().message());
    }
    if (in_flight_ > 0) --in_flight_;
    if (auto it = finishing_.find(turn.run_id); it != finishing_.end()) {
        it->second->cancel();
        finishing_.erase(it);
    }
}

Awaitable<Result<std::vector<AgentTurns::Reset>>> AgentTurns::ResetSessions(std::string agent,
                                                                            std::string session_id,
                                                                            std::string channel) {
    const AgentManifest* found = Find(agent);
    if (found == nullptr) co_return NotFoundError("no agent named " + agent);
    const std::string name = found->name;  // the manifests may be reloaded meanwhile
    STROWGER_CO_ASSIGN_OR_RETURN(auto sessions, co_await store_->ListSessions(name));
    std::vector<Reset> out;
    for (auto& session : sessions) {
        if (!session_id.empty() && session.session_id != session_id) continue;
        if (!channel.empty() && session.channel != channel) continue;
        STROWGER_CO_ASSIGN_OR_RETURN(auto messages,
                                     co_await store_->ReadSessionMessages(session.session_id));
        Reset reset;
        reset.messages = static_cast<int64_t>(messages.size());
        reset.had_summary = !session.summary.empty();
        store::SessionUpdate update;
        update.session_id = session.session_id;
        // Through the last message read (sequence numbers go on after it).
        for (const auto& m : messages) update.drop_through = std::max(update.drop_through, m.seq);
        update.set_summary = true;
        update.summary.clear();
        update.at = clock_.Now();
        STROWGER_CO_TRY(co_await store_->UpdateSession(std::move(update)));
        session.summary.clear();
        reset.session = std::move(session);
        out.push_back(std::move(reset));
    }
    if (!session_id.empty() && out.empty()) {
        co_return NotFoundError("agent " + name + " has no session " + session_id);
    }
    co_return out;
}

Awaitable<Status> AgentTurns::Recover() {
    STROWGER_CO_ASSIGN_OR_RETURN(auto turns, co_await store_->ListAgentTurns());
    for (auto& turn : turns) {
        ++in_flight_;
        finishing_[turn.run_id] = std::make_shared<asio::steady_timer>(
            executor_, std::chrono::steady_clock::time_point::max());
        asio::co_spawn(executor_, Finish(std::move(turn)), asio::detached);
    }
    co_return OkStatus();
}

}  // namespace strowger::automation
