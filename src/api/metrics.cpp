#include "api/metrics.hpp"

#include <cstdio>
#include <variant>

namespace strowger::api {
namespace {

const std::vector<double> kLatencyBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                            1,     2.5,  5,     10,   30,  60,   120};
const std::vector<double> kRequestBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                            0.05,   0.1,   0.25,   0.5,   1,    5};

std::string Number(double value) {
    char text[64];
    std::snprintf(text, sizeof text, "%.9g", value);
    return text;
}

// A label value, escaped as the exposition format wants (\\, \", \n).
std::string Label(std::string_view value) {
    std::string out;
    for (char c : value) {
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

void Header(std::string& out, const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

}  // namespace

void Histogram::Observe(double seconds) {
    size_t i = 0;
    while (i < bounds_.size() && seconds > bounds_[i]) ++i;
    ++counts_[i];
    sum_ += seconds;
    ++count_;
}

void Histogram::Render(std::string& out, const std::string& name, const std::string& labels) const {
    int64_t cumulative = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
        cumulative += counts_[i];
        out += name + "_bucket{" + labels + "le=\"" +
               (i < bounds_.size() ? Number(bounds_[i]) : std::string("+Inf")) + "\"} " +
               std::to_string(cumulative) + "\n";
    }
    std::string plain = labels.empty() ? "" : "{" + labels.substr(0, labels.size() - 1) + "}";
    out += name + "_sum" + plain + " " + Number(sum_) + "\n";
    out += name + "_count" + plain + " " + std::to_string(count_) + "\n";
}

Metrics::Metrics() : queue_wait_(kLatencyBounds) {}

void Metrics::OnEvent(const ledger::Event& event) {
    using ledger::EventType;
    switch (event.type) {
        case EventType::kRunCreated:
            ++runs_created_;
            created_[event.run_id] = event.time;
            break;
        case EventType::kRunStarted: {
            auto it = created_.find(event.run_id);
            if (it != created_.end()) {
                queue_wait_.Observe(std::chrono::duration<double>(event.time - it->second).count());
                created_.erase(it);
            }
            break;
        }
        case EventType::kRunCompleted:
        case EventType::kRunFailed:
        case EventType::kRunCancelled:
        case EventType::kRunPaused:
            ++runs_by_status_[event.type_name.substr(4)];
            created_.erase(event.run_id);
            break;
        case EventType::kNodeCompleted:
        case EventType::kNodeFailed:
        case EventType::kNodeSkipped:
        case EventType::kNodeRetryScheduled:
            ++node_outcomes_[event.type_name.substr(5)];
            break;
        case EventType::kLlmRequest: {
            auto payload = ledger::DecodePayload(event.type, event.type_name, event.data);
            if (payload) {
                if (auto* request = std::get_if<ledger::LlmRequest>(&*payload)) {
                    model_of_[event.run_id + "/" + event.node] =
                        ModelKey{request->provider, request->model};
                }
            }
            break;
        }
        case EventType::kLlmResponse: {
            auto payload = ledger::DecodePayload(event.type, event.type_name, event.data);
            if (!payload) break;
            auto* response = std::get_if<ledger::LlmResponse>(&*payload);
            if (!response) break;
            auto it = model_of_.find(event.run_id + "/" + event.node);
            ModelKey key = it != model_of_.end() ? it->second : ModelKey{"unknown", "unknown"};
            if (it != model_of_.end()) model_of_.erase(it);
            auto& stats = models_[key];
            ++stats.calls;
            stats.tokens_in += response->tokens_in;
            stats.tokens_out += response->tokens_out;
            stats.cost_nano_usd += response->cost_nano_usd;
            provider_latency_.try_emplace(key.provider, kLatencyBounds)
                .first->second.Observe(static_cast<double>(response->latency_ms) / 1000.0);
            break;
        }
        default:
            if (event.type_name == "human_task.created") ++runs_by_status_["waiting"];
            break;
    }
}

void Metrics::ObserveRequest(const std::string& route, const std::string& method, int status,
                             std::chrono::nanoseconds elapsed) {
    const std::string& name = route.empty() ? "unmatched" : route;
    ++requests_[RequestKey{name, method, status}];
    request_latency_.try_emplace(name, kRequestBounds)
        .first->second.Observe(std::chrono::duration<double>(elapsed).count());
}

std::string Metrics::Render(const Gauges& gauges) const {
    std::string out;
    Header(out, "strowger_up", "gauge", "1 while the daemon serves; ready is 1 once runs resumed");
    out += "strowger_up 1\n";
    out += "strowger_ready " + std::string(gauges.ready ? "1" : "0") + "\n";
    Header(out, "strowger_runs_created_total", "counter", "Runs created by this daemon");
    out += "strowger_runs_created_total " + std::to_string(runs_created_) + "\n";
    Header(out, "strowger_runs_total", "counter",
           "Runs that reached a status here (completed, failed, cancelled, paused, waiting)");
    for (const char* status : {"completed", "failed", "cancelled", "paused", "waiting"}) {
        auto it = runs_by_status_.find(status);
        out += "strowger_runs_total{status=\"" + std::string(status) + "\"} " +
               std::to_string(it == runs_by_status_.end() ? 0 : it->second) + "\n";
    }
    Header(out, "strowger_runs_executing", "gauge", "Runs executing in this daemon now");
    out += "strowger_runs_executing " + std::to_string(gauges.runs_executing) + "\n";
    Header(out, "strowger_node_executions_total", "counter", "Node outcomes by kind");
    for (const auto& [outcome, count] : node_outcomes_) {
        out += "strowger_node_executions_total{outcome=\"" + Label(outcome) + "\"} " +
               std::to_string(count) + "\n";
    }
    Header(out, "strowger_model_calls_total", "counter",
           "Model calls answered, by provider and model");
    for (const auto& [key, stats] : models_) {
        out += "strowger_model_calls_total{provider=\"" + Label(key.provider) + "\",model=\"" +
               Label(key.model) + "\"} " + std::to_string(stats.calls) + "\n";
    }
    Header(out, "strowger_model_tokens_total", "counter",
           "Tokens by provider, model and direction");
    for (const auto& [key, stats] : models_) {
        std::string labels =
            "provider=\"" + Label(key.provider) + "\",model=\"" + Label(key.model) + "\"";
        out += "strowger_model_tokens_total{" + labels + ",direction=\"in\"} " +
               std::to_string(stats.tokens_in) + "\n";
        out += "strowger_model_tokens_total{" + labels + ",direction=\"out\"} " +
               std::to_string(stats.tokens_out) + "\n";
    }
    Header(out, "strowger_model_cost_usd_total", "counter",
           "Cost in US dollars by provider and model");
    for (const auto& [key, stats] : models_) {
        out += "strowger_model_cost_usd_total{provider=\"" + Label(key.provider) + "\",model=\"" +
               Label(key.model) + "\"} " + Number(static_cast<double>(stats.cost_nano_usd) / 1e9) +
               "\n";
    }
    Header(out, "strowger_provider_latency_seconds", "histogram", "Model call latency by provider");
    for (const auto& [provider, histogram] : provider_latency_) {
        histogram.Render(out, "strowger_provider_latency_seconds",
                         "provider=\"" + Label(provider) + "\",");
    }
    Header(out, "strowger_run_queue_wait_seconds", "histogram",
           "Time from run.created to run.started (waiting for a slot)");
    queue_wait_.Render(out, "strowger_run_queue_wait_seconds", "");
    Header(out, "strowger_http_requests_total", "counter",
           "HTTP requests by route, method, status");
    for (const auto& [key, count] : requests_) {
        out += "strowger_http_requests_total{route=\"" + Label(key.route) + "\",method=\"" +
               Label(key.method) + "\",status=\"" + std::to_string(key.status) + "\"} " +
               std::to_string(count) + "\n";
    }
    Header(out, "strowger_http_request_seconds", "histogram",
           "HTTP request handling time by route");
    for (const auto& [route, histogram] : request_latency_) {
        histogram.Render(out, "strowger_http_request_seconds", "route=\"" + Label(route) + "\",");
    }
    Header(out, "strowger_http_connections", "gauge", "Open HTTP connections");
    out += "strowger_http_connections " + std::to_string(gauges.http_connections) + "\n";
    Header(out, "strowger_sse_streams", "gauge", "Open event streams (text/event-stream)");
    out += "strowger_sse_streams " + std::to_string(gauges.sse_streams) + "\n";
    Header(out, "strowger_workflows", "gauge", "Workflows in the registry");
    out += "strowger_workflows " + std::to_string(gauges.workflows) + "\n";
    Header(out, "strowger_supervisor_restarts_total", "counter",
           "Runs restarted from their ledger after an unexpected error");
    out += "strowger_supervisor_restarts_total " + std::to_string(supervisor_restarts_) + "\n";
    Header(out, "strowger_supervisor_failures_total", "counter",
           "Runs failed after too many restarts");
    out += "strowger_supervisor_failures_total " + std::to_string(supervisor_failures_) + "\n";
    Header(out, "strowger_retention_pruned_runs_total", "counter", "Runs deleted by retention");
    out += "strowger_retention_pruned_runs_total " + std::to_string(pruned_) + "\n";
    return out;
}

}  // namespace strowger::api
