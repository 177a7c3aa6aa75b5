// A run's input against the workflow's typed inputs (`inputs:`, docs/formats/workflow.md
// "Typed inputs"): what `strowger run`, `plan --input` and the daemon's run routes all apply
// before a run is created.
//
// Thread-safety: pure functions.
#pragma once

#include <boost/json/value.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "model/workflow.hpp"

namespace strowger::model {

// The input as the caller gave it.
struct GivenInput {
    std::string text;   // "" = none
    bool json = false;  // `text` is a JSON value (--input-json, a non-string API input)
    // "name=value" pairs (--set), applied after `text`; the value is read by the input's type.
    std::vector<std::string> sets;
};

// Whether `value` is of the declared `type` (string, number, boolean, object, array).
bool MatchesInputType(const boost::json::value& value, std::string_view type);

struct InputProblem {
    std::string input;    // the input's name ("" for a problem with the input as a whole)
    std::string message;  // names the input
};

struct AppliedInputs {
    std::string input;                   // the run's input (when `problems` is empty)
    std::vector<InputProblem> problems;  // every problem at once
    bool ok() const { return problems.empty(); }
    // The problems, one per line.
    std::string Message() const;
};

// The run's input. Without declared inputs: `text` unchanged (a --set is a problem). With
// them: a JSON object fills them by name; any other value (or text) is the value of the
// workflow's only input (with several, it must be an object); --set values override; defaults
// fill the rest. The input is then the compact JSON object of the values, keys sorted,
// numbers in shortest form. Problems: an undeclared name (with a did-you-mean), a value of
// the wrong type, a missing required input, a malformed --set.
AppliedInputs ApplyInputs(const std::vector<InputSpec>& inputs, const GivenInput& given);

}  // namespace strowger::model
