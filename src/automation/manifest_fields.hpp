// Private to the automation module: the standing-agent fields of a manifest (session_mode,
// max_history_tokens, cron entries; cron_spec.hpp lists them), read once for TOML and YAML/JSON
// manifests alike, with errors naming file:line:column and field.
#pragma once

#include <toml++/toml.h>

#include <map>
#include <string>
#include <vector>

#include "automation/agents.hpp"
#include "core/json.hpp"
#include "core/yaml.hpp"
#include "model/diagnostic.hpp"

namespace strowger::automation::internal {

// Some of a manifest's fields as JSON, with where each value was written ("cron[0].schedule").
struct FieldDoc {
    std::string file;
    json::object root;
    std::map<std::string, model::SourcePos> pos;
    model::SourcePos Pos(const std::string& path) const;
};

// The standing-agent fields (kStandingAgentFields) of a TOML table / YAML mapping.
FieldDoc StandingFieldsFromToml(const toml::table& root, const std::string& file);
FieldDoc StandingFieldsFromYaml(const YamlNode& root, const std::string& file);

// Reads them into `m` (its cron entries checked as the API checks a job, at `now`).
void ReadStandingFields(const FieldDoc& doc, AgentManifest& m,
                        std::vector<model::Diagnostic>& diagnostics, SystemTime now);

}  // namespace strowger::automation::internal
