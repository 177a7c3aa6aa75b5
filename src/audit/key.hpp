// Where a store's ledger key lives (docs/design/audit.md): $STROWGER_LEDGER_KEY if set, else
// beside the store file (`<store path>.key`); a `memory:` store gets a key made for the
// process.
#pragma once

#include <memory>
#include <string>

#include "core/ed25519.hpp"
#include "core/result.hpp"

namespace strowger::audit {

// The key file for `store_url` ("" for a memory: store without $STROWGER_LEDGER_KEY).
Result<std::string> LedgerKeyPath(const std::string& store_url);
// The store's signing key, created on first use (0600).
Result<std::shared_ptr<const SigningKey>> LoadLedgerKeyBlocking(const std::string& store_url);

}  // namespace strowger::audit
