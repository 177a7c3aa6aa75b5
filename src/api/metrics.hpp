// Prometheus metrics of the daemon (text exposition format 0.0.4): runs, node executions,
// model calls with tokens and cost by provider and model, queue waits, provider latency, HTTP
// requests and open event streams. Counted from the committed events this process sees (an
// engine observer) and the HTTP router; counters start at zero when the daemon starts.
//
// Thread-safety: one executor (the daemon's).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "engine/observer.hpp"

namespace strowger::api {

// A cumulative histogram with fixed bucket bounds (seconds).
class Histogram {
  public:
    explicit Histogram(std::vector<double> bounds)
        : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
    void Observe(double seconds);
    // Appends the _bucket, _sum and _count lines of `name` with `labels` ("" or `a="b",`).
    void Render(std::string& out, const std::string& name, const std::string& labels) const;

  private:
    std::vector<double> bounds_;
    std::vector<int64_t> counts_;
    double sum_ = 0;
    int64_t count_ = 0;
};

class Metrics final : public engine::Observer {
  public:
    Metrics();
    void OnEvent(const ledger::Event& event) override;
    bool WantsData() const override { return true; }

    void ObserveRequest(const std::string& route, const std::string& method, int status,
                        std::chrono::nanoseconds elapsed);
    void RunRestarted() { ++supervisor_restarts_; }
    void RunGivenUp() { ++supervisor_failures_; }
    void RunsPruned(int64_t count) { pruned_ += count; }

    // Gauges read when rendering.
    struct Gauges {
        int64_t runs_executing = 0;
        int64_t sse_streams = 0;
        int64_t http_connections = 0;
        int64_t followers = 0;
        int64_t workflows = 0;
        bool ready = false;
    };
    std::string Render(const Gauges& gauges) const;

  private:
    struct ModelKey {
        std::string provider, model;
        bool operator<(const ModelKey& o) const {
            return std::tie(provider, model) < std::tie(o.provider, o.model);
        }
    };
    struct ModelStats {
        int64_t calls = 0;
        int64_t tokens_in = 0;
        int64_t tokens_out = 0;
        int64_t cost_nano_usd = 0;
    };
    std::map<std::string, int64_t> runs_by_status_;  // terminal and stop transitions seen
    int64_t runs_created_ = 0;
    std::map<std::string, int64_t> node_outcomes_;  // node.completed, node.failed, ...
    std::map<ModelKey, ModelStats> models_;
    std::map<std::string, Histogram> provider_latency_;  // by provider
    Histogram queue_wait_;
    // run.created times of runs not yet started (for the queue wait), and each run's model by
    // node (llm.request names it; llm.response is counted against it).
    std::unordered_map<std::string, std::chrono::system_clock::time_point> created_;
    std::unordered_map<std::string, ModelKey> model_of_;  // "<run>/<node>"
    struct RequestKey {
        std::string route, method;
        int status;
        bool operator<(const RequestKey& o) const {
            return std::tie(route, method, status) < std::tie(o.route, o.method, o.status);
        }
    };
    std::map<RequestKey, int64_t> requests_;
    std::map<std::string, Histogram> request_latency_;  // by route
    int64_t supervisor_restarts_ = 0;
    int64_t supervisor_failures_ = 0;
    int64_t pruned_ = 0;
};

}  // namespace strowger::api
