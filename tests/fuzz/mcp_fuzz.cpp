// Fuzzes the MCP client's JSON-RPC reader (tools/mcp/mcp_client.cpp): what a server writes on
// its stdout, through the real client (line framing, the oversize scanner, response matching,
// server requests, batches, errors, the initialize handshake, tools/list paging, tools/call
// rendering, exits and restarts), with a scripted process in place of the server
// (McpServerSpec::start_process).
//
// The input is the server's output cut into replies at NUL bytes. Whenever the client has
// nothing left to do (its io_context is idle), the server writes its next reply; an empty reply,
// or the end of them, makes it exit. A restart gets a new process that goes on with the replies
// left. No real time passes: a client still waiting once the server has exited and there is
// nothing to restart is a hang.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>

#include "core/asio.hpp"
#include "tools/mcp/mcp_client.hpp"

namespace {

using namespace strowger;
using namespace strowger::tools;
constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

struct Script;

class ScriptedProcess : public sandbox::Process {
  public:
    ScriptedProcess(Executor executor, Script& script)
        : wake_(executor, asio::steady_timer::time_point::max()), script_(script) {}
    ~ScriptedProcess() override;

    Awaitable<Status> Write(std::string) override {
        if (exited_) co_return UnavailableError("scripted server exited");
        co_return OkStatus();
    }

    Awaitable<Result<std::string>> Read() override {
        for (;;) {
            if (!ready_.empty()) {
                std::string reply = std::move(ready_.front());
                ready_.pop_front();
                co_return reply;
            }
            if (exited_) co_return UnavailableError("scripted server exited");
            wake_.expires_at(asio::steady_timer::time_point::max());
            co_await wake_.async_wait(kUseTuple);
        }
    }

    std::string StderrTail() const override { return "scripted server"; }
    void Kill() override { Exit(); }
    bool Exited() const override { return exited_; }

    // The server writes `reply` on its stdout.
    void Say(std::string reply) {
        ready_.push_back(std::move(reply));
        wake_.cancel();
    }
    void Exit() {
        exited_ = true;
        wake_.cancel();
    }

  private:
    asio::steady_timer wake_;
    Script& script_;
    std::deque<std::string> ready_;
    bool exited_ = false;
};

struct Script {
    std::deque<std::string> replies;
    ScriptedProcess* current = nullptr;  // owned by the client's session
    int starts = 0;

    // One step of the server while the client waits; false once it can do nothing more.
    bool Step() {
        if (current == nullptr || current->Exited()) return false;
        if (replies.empty()) {
            current->Exit();
            return true;
        }
        std::string reply = std::move(replies.front());
        replies.pop_front();
        if (reply.empty()) {
            current->Exit();
        } else {
            current->Say(std::move(reply));
        }
        return true;
    }
};

ScriptedProcess::~ScriptedProcess() {
    if (script_.current == this) script_.current = nullptr;
}

template <typename T>
void Log(const char* what, const Result<T>& result) {
    spdlog::debug("mcp_fuzz: {}: {}", what, result ? "ok" : result.error().ToString());
}

Awaitable<void> Session(std::shared_ptr<Script> script, asio::io_context& io, bool& done) {
    mcp::McpServerSpec spec;
    spec.name = "fuzz";
    spec.command = "scripted";
    spec.start_process = [script](
                             Executor executor,
                             sandbox::ProcessSpec) -> Result<std::unique_ptr<sandbox::Process>> {
        if (script->replies.empty() || ++script->starts > 8) {
            return UnavailableError("scripted server: nothing more to say");
        }
        auto process = std::make_unique<ScriptedProcess>(std::move(executor), *script);
        script->current = process.get();
        return process;
    };
    const Deadline deadline = Deadline::After(std::chrono::hours(1));
    auto client = co_await mcp::StartMcpClient(io.get_executor(), spec, deadline);
    Log("start", client);
    if (client) {
        std::shared_ptr<mcp::McpClient> mcp = *client;
        auto tools = co_await mcp->ListTools(deadline);
        Log("tools/list", tools);
        std::string first = tools && !tools->empty() ? (*tools)[0].name : "echo";
        auto called = co_await mcp->CallTool(first, R"({"text":"hi"})", "run/node/1/1", deadline);
        Log("tools/call", called);
        called = co_await mcp->CallTool("add", "", "", deadline);
        Log("tools/call", called);
        tools = co_await mcp->ListTools(deadline);
        Log("tools/list", tools);
        called = co_await mcp->CallTool(first, "{}", "run/node/1/2", deadline);
        Log("tools/call", called);
        (void)mcp->LastToolList();
        mcp->Shutdown();
    }
    done = true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // The client's log (set STROWGER_FUZZ_LOG=1 to see it when replaying an input).
    spdlog::set_level(std::getenv("STROWGER_FUZZ_LOG") ? spdlog::level::debug : spdlog::level::off);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    auto script = std::make_shared<Script>();
    while (!input.empty()) {
        size_t end = input.find('\0');
        script->replies.emplace_back(input.substr(0, end));
        input.remove_prefix(end == std::string_view::npos ? input.size() : end + 1);
    }
    asio::io_context io;
    bool done = false;
    asio::co_spawn(io, Session(script, io, done), asio::detached);
    while (!done) {
        io.restart();
        if (io.poll() > 0) continue;
        if (!script->Step()) {
            if (done) break;
            // The server is gone and the client has nothing to do, yet a call has not returned.
            __builtin_trap();
        }
    }
    // What is left (the session's reader and writer, already closed) finishes.
    io.restart();
    io.poll();
    return 0;
}
