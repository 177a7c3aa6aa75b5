// Private to the SQLite store: the SQL of automation's records
// (docs/formats/automation_state_v1.md). Apply* run on the writer thread inside the batch
// transaction; Query* on a read connection.
#pragma once

#include <string>
#include <vector>

#include "store/sqlite/sqlite_connection.hpp"
#include "store/store.hpp"

namespace strowger::store::sqlite {

// The schema migration (version 5) that adds automation's tables.
extern const char* const kAutomationMigration;

Result<void> ApplyPutTrigger(Connection& db, const TriggerRecord& trigger);
Result<std::vector<TriggerRecord>> QueryTriggers(Connection& db);
Result<void> ApplyDeleteTrigger(Connection& db, const std::string& trigger_id);
Result<void> ApplyRecordTriggerFire(Connection& db, const TriggerFire& fire);
Result<TriggerRecord> ApplyCompleteTriggerFire(Connection& db, const std::string& fire_id,
                                               const std::string& run_id, const std::string& error,
                                               SystemTime at);
Result<std::vector<TriggerFire>> QueryPendingTriggerFires(Connection& db);
Result<std::vector<TriggerFire>> QueryTriggerFires(Connection& db, const std::string& trigger_id,
                                                   int64_t limit);

Result<MemoryChange> ApplyPutMemory(Connection& db, const MemoryEntry& entry);
Result<MemoryEntry> QueryMemory(Connection& db, const std::string& name_space,
                                const std::string& key);
Result<std::vector<MemoryEntry>> QueryMemoryList(Connection& db, const std::string& name_space,
                                                 const std::string& prefix, int64_t limit);
Result<MemoryChange> ApplyDeleteMemory(Connection& db, const std::string& name_space,
                                       const std::string& key);

Result<void> ApplyPutWebhook(Connection& db, const WebhookRecord& hook);
Result<std::vector<WebhookRecord>> QueryWebhooks(Connection& db);
Result<void> ApplyDeleteWebhook(Connection& db, const std::string& name);
Result<void> ApplyRecordWebhookDelivery(Connection& db, const std::string& hook,
                                        const std::string& delivery_id, SystemTime at);
Result<void> ApplySetWebhookDeliveryRun(Connection& db, const std::string& hook,
                                        const std::string& delivery_id, const std::string& run_id);

}  // namespace strowger::store::sqlite
