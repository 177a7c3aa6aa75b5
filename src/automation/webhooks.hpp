// Signed webhooks (issue 16, item 5): `POST /api/hooks/<name>` starts a workflow with the JSON
// body as its input, or posts an event on the bus. Hooks are made by the admin API
// (`POST /api/hooks`: the secret is shown once) and kept in the store
// (docs/formats/automation_state_v1.md).
//
// A delivery is accepted only if:
//   * `X-Hub-Signature-256: sha256=<hex>` is the HMAC-SHA256 of the raw body under the hook's
//     secret (GitHub's form), compared in constant time;
//   * `X-Strowger-Timestamp` (unix seconds) is within 5 minutes of now — required unless the
//     hook was made with require_timestamp false (GitHub sends none);
//   * its delivery id (`X-Delivery-Id`, else `X-GitHub-Delivery`), if it has one, was not seen
//     before for this hook (recorded durably before anything starts). A workflow start carries
//     the idempotency key "hook:<name>:<delivery id>"; a duplicate is answered "duplicate" with
//     the run the first delivery started (the start is made again with the same key, which
//     starts nothing new — or starts the run if a crash came between the record and the start:
//     the sender's redelivery completes it). A duplicate to an event hook posts nothing.
// Anything else is kUnauthenticated (401): nothing starts, and the rejection is logged and
// posted on the bus as a system event (webhook_rejected).
//
// Thread-safety: on the daemon's one executor.
#pragma once

#include <memory>
#include <string>

#include "automation/bus.hpp"
#include "automation/launcher.hpp"
#include "core/clock.hpp"
#include "core/random.hpp"
#include "store/store.hpp"

namespace strowger::automation {

inline constexpr std::chrono::seconds kReplayWindow{300};

// "sha256=" + hex HMAC-SHA256 of `body` under `secret`.
std::string SignWebhook(std::string_view secret, std::string_view body);
// Whether `header` is SignWebhook(secret, body) (constant time).
bool VerifyWebhookSignature(std::string_view secret, std::string_view body,
                            std::string_view header);

struct Delivery {
    std::string hook;
    std::string body;
    std::string signature;  // X-Hub-Signature-256
    std::string timestamp;  // X-Strowger-Timestamp ("" = none)
    std::string delivery_id;
    std::string remote;
};

struct DeliveryOutcome {
    std::string status;    // "started" | "accepted" | "duplicate"
    std::string run_id;    // started (or the duplicate's, when known)
    std::string event_id;  // accepted
};

class WebhookService {
  public:
    WebhookService(std::shared_ptr<store::Store> store, EventBus& bus, Clock& clock, Random& random)
        : store_(std::move(store)), bus_(bus), clock_(clock), random_(random) {}
    void SetLauncher(Launcher* launcher) { launcher_ = launcher; }

    // Makes a hook; an empty secret gets a random one (32 bytes, hex). Returns the record with
    // its secret (shown once).
    Awaitable<Result<store::WebhookRecord>> Create(store::WebhookRecord hook);
    // What the header comment says. kNotFound for an unknown hook, kUnauthenticated for a bad
    // signature or timestamp, kInvalidArgument for a body that is not JSON (workflow hooks).
    Awaitable<Result<DeliveryOutcome>> Receive(Delivery delivery);

    int64_t rejected() const { return rejected_; }

  private:
    Result<DeliveryOutcome> Reject(const Delivery& delivery, const std::string& why);
    std::shared_ptr<store::Store> store_;
    EventBus& bus_;
    Clock& clock_;
    Random& random_;
    Launcher* launcher_ = nullptr;
    int64_t rejected_ = 0;
};

}  // namespace strowger::automation
