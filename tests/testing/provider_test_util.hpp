// Helpers shared by the provider tests (src/providers/*_test.cpp): a stream sink that records
// what it was given, and a recorded request's body as a JSON object.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.hpp"
#include "providers/provider.hpp"
#include "testing/mock_model_server.hpp"

namespace strowger::testing {

struct RecordingSink : providers::StreamSink {
    void OnDelta(std::string_view text) override { deltas.emplace_back(text); }
    void OnReset() override { ++resets; }
    std::string Joined() const {
        std::string all;
        for (const auto& delta : deltas) all += delta;
        return all;
    }
    std::vector<std::string> deltas;
    int resets = 0;
};

// A request of a system message ("Be brief.") and `prompt` as the user's, for `model`, naming
// the run and node the provider reports in its headers.
inline providers::CompletionRequest BriefRequest(std::string model, std::string prompt,
                                                 std::string run_id, std::string node) {
    providers::CompletionRequest request;
    request.model = std::move(model);
    providers::Message system;
    system.role = providers::Role::kSystem;
    system.content = "Be brief.";
    providers::Message user;
    user.content = std::move(prompt);
    request.messages = {system, user};
    request.run_id = std::move(run_id);
    request.node = std::move(node);
    return request;
}

// The request's body parsed as a JSON object; a test failure (and an empty object) if it is not.
inline boost::json::object BodyOf(const RecordedRequest& request) {
    auto parsed = ParseJson(request.body);
    EXPECT_TRUE(parsed && parsed->is_object()) << request.body;
    return parsed && parsed->is_object() ? parsed->as_object() : boost::json::object();
}

}  // namespace strowger::testing
