#include "cli/progress.hpp"

#include <boost/json.hpp>

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/common.hpp"
#include "core/json.hpp"
#include "core/strings.hpp"

namespace strowger::cli {
namespace {

std::string Seconds(std::chrono::steady_clock::duration d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fs",
                  std::chrono::duration_cast<std::chrono::milliseconds>(d).count() / 1000.0);
    return buf;
}

// The terminal's width now (read at every redraw, so a resize — SIGWINCH — is followed);
// 80 when stderr is not a terminal or says 0.
size_t TerminalColumns() {
    winsize size{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
    return 80;
}

// `line` (escaped: no control characters) cut to fewer than `columns` columns, counting a code
// point as one column, with "…" where it was cut. A status line as wide as the terminal would
// wrap, and the next "\r" redraw would leave the wrapped part behind.
std::string ClipToColumns(const std::string& line, size_t columns) {
    const size_t limit = columns > 1 ? columns - 1 : 1;
    size_t count = 0;
    for (size_t i = 0; i < line.size(); ++i) {
        if ((static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) continue;  // continuation
        if (++count == limit) {
            size_t rest = i + 1;
            while (rest < line.size() && (static_cast<unsigned char>(line[rest]) & 0xC0) == 0x80)
                ++rest;
            if (rest >= line.size()) return line;
            return line.substr(0, i) + "…";
        }
    }
    return line;
}

}  // namespace

ProgressDisplay::ProgressDisplay(Executor executor, Mode mode) : mode_(mode), timer_(executor) {
    Tick();
}

ProgressDisplay::~ProgressDisplay() {
    Stop();
}

void ProgressDisplay::Stop() {
    if (stopped_) return;
    stopped_ = true;
    timer_.cancel();
    if (status_shown_) {
        std::cerr << "\r\033[2K" << std::flush;
        status_shown_ = false;
    }
}

void ProgressDisplay::Suspend() {
    ticking_ = false;
    timer_.cancel();
    running_.clear();
    Redraw();  // clears the status line
}

void ProgressDisplay::Tick() {
    if (ticking_ || stopped_ || mode_ != Mode::kLive) return;
    ticking_ = true;
    timer_.expires_after(std::chrono::milliseconds(100));
    timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || stopped_ || !ticking_) return;  // cancelled by Stop or Suspend
        ticking_ = false;
        ++frame_;
        Redraw();
        Tick();
    });
}

void ProgressDisplay::Print(const std::string& line) {
    if (status_shown_) std::cerr << "\r\033[2K";
    // Step names, errors and task titles come from the workflow and the models: escaped, on
    // one line.
    std::cerr << EscapeControl(line, Newlines::kEscape) << "\n";
    status_shown_ = false;
    if (mode_ == Mode::kLive) Redraw();
}

void ProgressDisplay::Redraw() {
    if (stopped_ || mode_ != Mode::kLive) return;
    if (running_.empty()) {
        if (status_shown_) std::cerr << "\r\033[2K" << std::flush;
        status_shown_ = false;
        return;
    }
    static const char* kSpinner[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};
    auto now = std::chrono::steady_clock::now();
    std::string line =
        std::string(kSpinner[frame_ % 10]) + " " + Seconds(now - start_) + "  running:";
    for (const auto& [node, r] : running_) {
        line += " " + node + " " + Seconds(now - r.since);
        if (r.streamed_bytes > 0)
            line += " ~" + std::to_string((r.streamed_bytes + 3) / 4) + " tok";
        line += ";";
    }
    line.pop_back();
    std::cerr << "\r\033[2K"
              << ClipToColumns(EscapeControl(Preview(line, 400), Newlines::kEscape),
                               TerminalColumns())
              << std::flush;
    status_shown_ = true;
}

void ProgressDisplay::OnDelta(std::string_view, std::string_view node, std::string_view text) {
    auto it = running_.find(std::string(node));
    if (it != running_.end()) it->second.streamed_bytes += static_cast<int64_t>(text.size());
}

void ProgressDisplay::OnEvent(const ledger::Event& event) {
    auto parsed = ParseJson(event.data);
    json::object data = parsed && parsed->is_object() ? parsed->get_object() : json::object();
    auto now = std::chrono::steady_clock::now();
    const std::string& node = event.node;
    switch (event.type) {
        case ledger::EventType::kRunStarted:
        case ledger::EventType::kRunResumed:
            Print("run " + event.run_id +
                  (event.type == ledger::EventType::kRunResumed ? " resumed" : " started"));
            break;
        case ledger::EventType::kNodeStarted: {
            Tick();
            running_[node] = Running{now, event.attempt, 0};
            std::string line = "▶ " + Pad(node, 22);
            int64_t iteration = JsonInt(data, "iteration");
            if (iteration > 0) line += " iteration " + std::to_string(iteration);
            if (auto r = retries_.find(node); r != retries_.end())
                line += " retry " + std::to_string(r->second);
            Print(line);
            break;
        }
        case ledger::EventType::kNodeCompleted:
            if (JsonInt(data, "iterations") > 0) {
                running_.erase(node);
                retries_.erase(node);
                Print("✓ " + Pad(node, 22) + " done after " +
                      std::to_string(JsonInt(data, "iterations")) + " iteration(s)");
                break;
            }
            // A node this display did not see start: a collect step (no model call), or one
            // that started before a resume or an approval; the tokens tell them apart.
            if (running_.find(node) == running_.end() && JsonInt(data, "tokens_in") == 0 &&
                JsonInt(data, "tokens_out") == 0) {
                Print("✓ " + Pad(node, 22));
                break;
            }
            [[fallthrough]];
        case ledger::EventType::kNodeIterationCompleted: {
            retries_.erase(node);
            auto it = running_.find(node);
            std::string elapsed = it != running_.end() ? Seconds(now - it->second.since) : "";
            if (event.type == ledger::EventType::kNodeCompleted || it == running_.end()) {
                if (it != running_.end()) running_.erase(it);
            } else {
                it->second.since = now;
            }
            std::string line = "✓ " + Pad(node, 22) + " " + Pad(elapsed, 8);
            int64_t in = JsonInt(data, "tokens_in");
            int64_t out = JsonInt(data, "tokens_out");
            if (in || out)
                line += " " + std::to_string(in) + " → " + std::to_string(out) + " tokens";
            if (event.type == ledger::EventType::kNodeIterationCompleted) {
                line += "  (iteration " + std::to_string(JsonInt(data, "iteration")) + ")";
            }
            Print(line);
            break;
        }
        case ledger::EventType::kNodeRetryScheduled:
            running_.erase(node);
            ++retries_[node];
            Print("↻ " + Pad(node, 22) + " attempt " + std::to_string(event.attempt) +
                  " failed: " + Preview(JsonString(data, "error"), 100) + " — retrying in " +
                  std::to_string(JsonInt(data, "delay_ms")) + "ms");
            break;
        case ledger::EventType::kNodeFailed:
            running_.erase(node);
            Print("✗ " + Pad(node, 22) + " " + Preview(JsonString(data, "error"), 160));
            break;
        case ledger::EventType::kNodeSkipped:
            running_.erase(node);
            Print("↷ " + Pad(node, 22) + " skipped (" +
                  (JsonString(data, "reason") == "condition_not_met"
                       ? std::string("condition not met")
                       : "error: " + Preview(JsonString(data, "error"), 100)) +
                  ")");
            break;
        case ledger::EventType::kRunPaused:
            Print("⏸ run paused");
            break;
        case ledger::EventType::kToolCall:
            Print("  ⚙ " + Pad(node, 20) + " " + std::string(JsonString(data, "tool")));
            break;
        case ledger::EventType::kLlmRetried: {
            int64_t status = JsonInt(data, "http_status");
            Print("  ↻ " + Pad(node, 20) + " model call try " +
                  std::to_string(JsonInt(data, "try")) + " failed" +
                  (status > 0 ? " (HTTP " + std::to_string(status) + ")" : std::string()) +
                  ", tried again");
            break;
        }
        case ledger::EventType::kHumanTaskCreated:
            Print("⏸ " + Pad(node, 22) +
                  " waits for a human decision: " + Preview(JsonString(data, "title"), 120));
            break;
        case ledger::EventType::kHumanTaskDecided: {
            const std::string_view decision = JsonString(data, "decision");
            Print("  " + Pad(node, 22) + " " +
                  (decision == "approve"           ? "approved"
                   : decision == "request_changes" ? "asked for changes"
                   : decision == "progress"        ? "reported progress"
                                                   : "rejected") +
                  " by " + std::string(JsonString(data, "actor")));
            break;
        }
        case ledger::EventType::kBudgetExceeded:
            Print("✗ " + Pad(node, 22) +
                  " budget exceeded: " + std::string(JsonString(data, "limit")) + " " +
                  std::string(JsonString(data, "used")) +
                  " >= " + std::string(JsonString(data, "max")) + " (" +
                  std::string(JsonString(data, "scope")) + ")");
            break;
        case ledger::EventType::kRunCancelled:
            Print("■ run cancelled");
            break;
        default:
            break;
    }
}

}  // namespace strowger::cli
