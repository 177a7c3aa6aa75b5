// Live progress of runs on stderr: one line per step event, plus a status line (redrawn every
// 100 ms on a terminal) naming the steps in flight, their elapsed time and tokens so far.
//
// Thread-safety: callbacks and the redraw timer run on the one I/O thread of the CLI.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "core/asio.hpp"
#include "engine/observer.hpp"

namespace strowger::cli {

class ProgressDisplay final : public engine::Observer {
  public:
    enum class Mode { kLive, kLines };
    ProgressDisplay(Executor executor, Mode mode);
    ~ProgressDisplay() override;

    void OnEvent(const ledger::Event& event) override;
    bool WantsDeltas() const override { return mode_ == Mode::kLive; }
    void OnDelta(std::string_view run_id, std::string_view node, std::string_view text) override;
    // Stops the redraw timer and clears the status line, for good.
    void Stop();
    // The run stopped executing here without ending (it waits for a human decision): stops
    // the redraw timer, so the I/O loop can return, and forgets the steps in flight. The
    // events of a resumed run start the display again.
    void Suspend();

  private:
    struct Running {
        std::chrono::steady_clock::time_point since;
        int64_t attempt = 0;
        int64_t streamed_bytes = 0;
    };
    void Print(const std::string& line);
    void Redraw();
    void Tick();

    Mode mode_;
    asio::steady_timer timer_;
    std::map<std::string, Running> running_;
    std::map<std::string, int64_t> retries_;  // node -> retries so far, for "retry k" labels
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
    bool status_shown_ = false;
    bool stopped_ = false;
    bool ticking_ = false;
    int frame_ = 0;
};

}  // namespace strowger::cli
