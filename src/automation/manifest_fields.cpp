#include "automation/manifest_fields.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <sstream>

#include "automation/cron_spec.hpp"
#include "core/strings.hpp"

namespace strowger::automation::internal {
namespace {

using model::Diagnostic;

json::value TomlToJson(const toml::node& node, const std::string& path, FieldDoc& doc) {
    doc.pos[path] = {doc.file, static_cast<int>(node.source().begin.line),
                     static_cast<int>(node.source().begin.column)};
    if (auto v = node.value_exact<std::string>()) return json::string(*v);
    if (auto v = node.value_exact<int64_t>()) return *v;
    if (auto v = node.value_exact<double>()) return *v;
    if (auto v = node.value_exact<bool>()) return *v;
    if (const auto* a = node.as_array()) {
        json::array out;
        for (size_t i = 0; i < a->size(); ++i) {
            out.push_back(TomlToJson(*a->get(i), path + "[" + std::to_string(i) + "]", doc));
        }
        return out;
    }
    if (const auto* t = node.as_table()) {
        json::object out;
        for (const auto& [key, value] : *t) {
            std::string k(key.str());
            out[k] = TomlToJson(value, path + "." + k, doc);
        }
        return out;
    }
    std::ostringstream text;  // dates and times: as written
    node.visit([&](const auto& concrete) { text << concrete; });
    return json::string(text.str());
}

json::value YamlScalar(const YamlNode& node) {
    std::string_view text = node.Scalar();
    if (node.Tag() != "?") return json::string(text);
    if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
        return nullptr;
    }
    if (text == "true" || text == "True" || text == "TRUE") return true;
    if (text == "false" || text == "False" || text == "FALSE") return false;
    int64_t i = 0;
    if (auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), i);
        ec == std::errc() && end == text.data() + text.size()) {
        return i;
    }
    std::string copy(text);
    char* end = nullptr;
    double d = std::strtod(copy.c_str(), &end);
    if (end != nullptr && *end == '\0' && end != copy.c_str() &&
        copy.find_first_not_of("0123456789+-.eE") == std::string::npos) {
        return d;
    }
    return json::string(text);
}

json::value YamlToJson(const YamlNode& node, const std::string& path, FieldDoc& doc) {
    doc.pos[path] = {doc.file, node.line(), node.column()};
    if (node.IsSequence()) {
        json::array out;
        for (size_t i = 0; i < node.size(); ++i) {
            out.push_back(YamlToJson(node[i], path + "[" + std::to_string(i) + "]", doc));
        }
        return out;
    }
    if (node.IsMap()) {
        json::object out;
        for (size_t i = 0; i < node.size(); ++i) {
            std::string k(node.Key(i).Scalar());
            out[k] = YamlToJson(node.Value(i), path + "." + k, doc);
        }
        return out;
    }
    if (node.IsScalar()) return YamlScalar(node);
    return nullptr;
}

bool IsStandingField(std::string_view key) {
    return std::find(std::begin(kStandingAgentFields), std::end(kStandingAgentFields), key) !=
           std::end(kStandingAgentFields);
}

class Reader {
  public:
    Reader(const FieldDoc& doc, std::vector<Diagnostic>& out) : doc_(doc), out_(out) {}
    void Error(const std::string& path, std::string message) {
        Diagnostic d;
        d.pos = doc_.Pos(path);
        d.path = path;
        d.message = std::move(message);
        out_.push_back(std::move(d));
    }
    void CronEntry(const json::value& value, const std::string& path, AgentManifest& m,
                   SystemTime now);

  private:
    const FieldDoc& doc_;
    std::vector<Diagnostic>& out_;
};

void Reader::CronEntry(const json::value& value, const std::string& path, AgentManifest& m,
                       SystemTime now) {
    const auto* entry = value.if_object();
    if (entry == nullptr) {
        Error(path, "expected a table (a cron entry: name, schedule, message or workflow_id, ...)");
        return;
    }
    std::vector<std::string_view> known;
    for (auto field : kCronJobFields) {
        if (field != "agent_id") known.push_back(field);
    }
    bool bad = false;
    for (const auto& [key, v] : *entry) {
        if (std::find(known.begin(), known.end(), key) != known.end()) continue;
        std::string hint = ClosestMatch(key, known);
        Error(path + "." + std::string(key),
              "unknown field" + (hint.empty() ? std::string() : " (did you mean " + hint + "?)"));
        bad = true;
    }
    if (bad) return;
    CronJobSpec base;
    base.agent = m.name;
    base.origin = "manifest:" + m.file;
    // An entry's session mode falls back to the manifest's at the turn (not here), so that the
    // precedence job > manifest > persistent is decided in one place.
    auto report = [&](const strowger::Error& error) {
        const std::string& message = error.message();
        std::string field = message.substr(0, message.find(':'));
        std::string text = field.size() < message.size()
                               ? std::string(Trim(message.substr(field.size() + 1)))
                               : message;
        if (field.find(' ') != std::string::npos) {
            field.clear();
            text = message;
        }
        // The body's field as the entry wrote it: "action.session_mode" is the entry's
        // "session_mode" (or its "action"), "schedule.expr" its "schedule".
        std::string key = field;
        if (StartsWith(key, "action.") && !entry->contains("action")) key = key.substr(7);
        if (key == "schedule.tz" && entry->contains("tz")) key = "tz";
        if (auto dot = key.find('.'); dot != std::string::npos) key = key.substr(0, dot);
        if (key == "agent_id" || key.empty() || !entry->contains(key)) {
            Error(path + (field.empty() ? std::string() : "." + field), text);
        } else {
            Error(path + "." + key, text);
        }
    };
    auto spec = CronSpecFromJson(*entry, base);
    if (!spec) return report(spec.error());
    if (spec->name.empty()) return Error(path + ".name", "a cron entry needs a name");
    auto checked = CheckCronSpec(std::move(*spec), now);
    if (!checked) return report(checked.error());
    ManifestCron cron;
    cron.spec = std::move(*checked);
    cron.pos = doc_.Pos(path);
    m.cron.push_back(std::move(cron));
}

}  // namespace

model::SourcePos FieldDoc::Pos(const std::string& path) const {
    // The value's own position, else its nearest enclosing one's.
    std::string p = path;
    while (!p.empty()) {
        if (auto it = pos.find(p); it != pos.end()) return it->second;
        auto cut = p.find_last_of(".[");
        if (cut == std::string::npos) break;
        p.resize(cut);
    }
    return {file, 1, 1};
}

FieldDoc StandingFieldsFromToml(const toml::table& root, const std::string& file) {
    FieldDoc doc;
    doc.file = file;
    for (const auto& [key, value] : root) {
        std::string k(key.str());
        if (IsStandingField(k)) doc.root[k] = TomlToJson(value, k, doc);
    }
    return doc;
}

FieldDoc StandingFieldsFromYaml(const YamlNode& root, const std::string& file) {
    FieldDoc doc;
    doc.file = file;
    if (!root.IsMap()) return doc;
    for (size_t i = 0; i < root.size(); ++i) {
        std::string k(root.Key(i).Scalar());
        if (IsStandingField(k)) doc.root[k] = YamlToJson(root.Value(i), k, doc);
    }
    return doc;
}

void ReadStandingFields(const FieldDoc& doc, AgentManifest& m,
                        std::vector<model::Diagnostic>& diagnostics, SystemTime now) {
    Reader r(doc, diagnostics);
    if (const auto* v = doc.root.if_contains("session_mode")) {
        if (!v->is_string()) {
            r.Error("session_mode", "expected \"persistent\" or \"new\"");
        } else if (v->as_string() != "persistent" && v->as_string() != "new") {
            r.Error("session_mode", "expected \"persistent\" or \"new\", not \"" +
                                        std::string(v->as_string()) + "\"");
        } else {
            m.session_mode = std::string(v->as_string());
        }
    }
    if (const auto* v = doc.root.if_contains("max_history_tokens")) {
        if (!v->is_int64()) {
            r.Error("max_history_tokens", "expected a whole number");
        } else if (v->as_int64() < kMinHistoryTokens) {
            r.Error("max_history_tokens", "must be at least " + std::to_string(kMinHistoryTokens) +
                                              ", not " + std::to_string(v->as_int64()));
        } else {
            m.max_history_tokens = v->as_int64();
        }
    }
    if (const auto* v = doc.root.if_contains("cron")) {
        if (!v->is_array()) {
            r.Error("cron", "expected a list of cron entries ([[cron]] tables in TOML)");
            return;
        }
        const auto& entries = v->as_array();
        for (size_t i = 0; i < entries.size(); ++i) {
            r.CronEntry(entries[i], "cron[" + std::to_string(i) + "]", m, now);
        }
    }
}

}  // namespace strowger::automation::internal
