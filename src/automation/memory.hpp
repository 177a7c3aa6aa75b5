// Agent memory (issue 16, item 6): a durable key-value store in the run store
// (docs/formats/automation_state_v1.md) with namespaces `global`, `agent:<name>` and
// `run:<run_id>`, and the tools agents use it through:
//
//   memory_get     read_only         {namespace?, key}            the value, or "not found"
//   memory_list    read_only         {namespace?, prefix?, limit?} the keys and values
//   memory_set     idempotent_write  {namespace?, key, value}     any JSON value
//   memory_delete  idempotent_write  {namespace?, key}            deleting a missing key is
//                                                                 not an error (idempotent)
//
// `namespace` defaults to "global"; "run" means this run's own (`run:<run_id>`). Every change
// (created, updated, deleted; not a set to the same value) goes to the listener: the daemon
// puts it on the event bus as a memory_update event.
//
// The tools are registered wherever tools are (strowger run and serve alike); the service is
// attached to the store once it is open.
//
// Thread-safety: Attach and SetListener before use; the rest on the engine's executor.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "automation/bus.hpp"
#include "core/json.hpp"
#include "store/store.hpp"
#include "tools/tool.hpp"

namespace strowger::automation {

inline constexpr size_t kMaxMemoryKeyBytes = 256;
inline constexpr size_t kMaxMemoryValueBytes = 64 * 1024;

struct MemoryUpdate {
    std::string name_space;
    std::string key;
    std::string kind;    // "created" | "updated" | "deleted"
    std::string value;   // canonical JSON ("" when deleted)
    std::string run_id;  // the run whose tool call made it ("" = the API)
};

// kInvalidArgument (naming the field) unless `name_space` is global, agent:<name> or
// run:<id>; `key` 1..256 bytes of valid UTF-8 without control characters.
Status CheckMemoryNamespace(std::string_view name_space);
Status CheckMemoryKey(std::string_view key);

// The bus event of a memory change ("Memory Updated on key 'config' for agent coder").
BusEvent MemoryEvent(const MemoryUpdate& update);

class MemoryService {
  public:
    void Attach(std::shared_ptr<store::Store> store) { store_ = std::move(store); }
    void SetListener(std::function<void(const MemoryUpdate&)> listener) {
        listener_ = std::move(listener);
    }
    bool attached() const { return store_ != nullptr; }

    Awaitable<Result<store::MemoryEntry>> Get(std::string name_space, std::string key);
    Awaitable<Result<std::vector<store::MemoryEntry>>> List(std::string name_space,
                                                            std::string prefix, int64_t limit);
    Awaitable<Result<store::MemoryChange>> Set(std::string name_space, std::string key,
                                               json::value value, SystemTime now,
                                               std::string run_id = "");
    Awaitable<Result<store::MemoryChange>> Delete(std::string name_space, std::string key,
                                                  std::string run_id = "");

  private:
    Status Ready() const;
    std::shared_ptr<store::Store> store_;
    std::function<void(const MemoryUpdate&)> listener_;
};

// Registers memory_get, memory_set, memory_list and memory_delete over `memory`.
void RegisterMemoryTools(tools::ToolRegistry& registry, std::shared_ptr<MemoryService> memory,
                         Clock& clock = Clock::Real());

}  // namespace strowger::automation
