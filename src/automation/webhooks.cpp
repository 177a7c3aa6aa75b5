#include "automation/webhooks.hpp"

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include <charconv>
#include <optional>

#include <spdlog/spdlog.h>

#include "core/json.hpp"
#include "core/strings.hpp"

namespace strowger::automation {

std::string SignWebhook(std::string_view secret, std::string_view body) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &size);
    std::string hex(size * 2, '0');
    HexEncode(mac, size, hex.data());
    return "sha256=" + hex;
}

bool VerifyWebhookSignature(std::string_view secret, std::string_view body,
                            std::string_view header) {
    std::string expected = SignWebhook(secret, body);
    std::string given = AsciiLower(Trim(header));
    if (given.size() != expected.size()) return false;
    return CRYPTO_memcmp(given.data(), expected.data(), expected.size()) == 0;
}

Awaitable<Result<store::WebhookRecord>> WebhookService::Create(store::WebhookRecord hook) {
    if (hook.name.empty() || hook.name.size() > 64 ||
        hook.name.find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
            std::string::npos) {
        co_return InvalidArgumentError("name: expected 1 to 64 of A-Z a-z 0-9 _ . -");
    }
    if (hook.secret.empty()) {
        unsigned char bytes[32];
        for (size_t i = 0; i < sizeof bytes; i += 8) {
            uint64_t r = random_.Next();
            for (size_t j = 0; j < 8; ++j) bytes[i + j] = static_cast<unsigned char>(r >> (8 * j));
        }
        hook.secret.assign(64, '0');
        HexEncode(bytes, sizeof bytes, hook.secret.data());
    } else if (hook.secret.size() < 16) {
        co_return InvalidArgumentError("secret: at least 16 characters");
    }
    hook.created_at = clock_.Now();
    STROWGER_CO_TRY(co_await store_->PutWebhook(hook));
    co_return hook;
}

Result<DeliveryOutcome> WebhookService::Reject(const Delivery& delivery, const std::string& why) {
    ++rejected_;
    spdlog::warn("webhook {}: delivery {} from {} rejected: {}", delivery.hook,
                 delivery.delivery_id.empty() ? "(no id)" : delivery.delivery_id, delivery.remote,
                 why);
    BusEvent event;
    event.kind = EventKind::kSystem;
    event.type = "webhook_rejected";
    event.subject = "hook:" + delivery.hook;
    event.description =
        "Webhook '" + delivery.hook + "' rejected a delivery from " + delivery.remote + ": " + why;
    bus_.Publish(std::move(event));
    return MakeError(ErrorCode::kUnauthenticated, "webhook " + delivery.hook + ": " + why);
}

Awaitable<Result<DeliveryOutcome>> WebhookService::Receive(Delivery delivery) {
    STROWGER_CO_ASSIGN_OR_RETURN(auto hooks, co_await store_->ListWebhooks());
    const store::WebhookRecord* hook = nullptr;
    for (const auto& h : hooks) {
        if (h.name == delivery.hook) hook = &h;
    }
    if (!hook) co_return NotFoundError("no hook named " + delivery.hook);
    if (delivery.signature.empty()) {
        co_return Reject(delivery, "no X-Hub-Signature-256 header");
    }
    if (!VerifyWebhookSignature(hook->secret, delivery.body, delivery.signature)) {
        co_return Reject(delivery, "bad signature");
    }
    if (!delivery.timestamp.empty() || hook->require_timestamp) {
        int64_t seconds = 0;
        auto [end, ec] =
            std::from_chars(delivery.timestamp.data(),
                            delivery.timestamp.data() + delivery.timestamp.size(), seconds);
        if (delivery.timestamp.empty())
            co_return Reject(delivery, "no X-Strowger-Timestamp header");
        if (ec != std::errc() || end != delivery.timestamp.data() + delivery.timestamp.size()) {
            co_return Reject(delivery, "X-Strowger-Timestamp is not unix seconds");
        }
        auto now = std::chrono::duration_cast<std::chrono::seconds>(clock_.Now().time_since_epoch())
                       .count();
        if (seconds < now - kReplayWindow.count() || seconds > now + kReplayWindow.count()) {
            co_return Reject(delivery, "timestamp outside the 5-minute replay window");
        }
    }
    std::optional<json::value> input;
    if (!hook->workflow_id.empty()) {
        auto parsed = ParseJson(delivery.body.empty() ? std::string_view("{}") : delivery.body);
        if (!parsed) co_return InvalidArgumentError("body: not JSON: " + parsed.error().message());
        input = std::move(*parsed);
    }
    std::string key;
    if (!delivery.delivery_id.empty()) {
        key = "hook:" + hook->name + ":" + delivery.delivery_id;
        auto recorded =
            co_await store_->RecordWebhookDelivery(hook->name, delivery.delivery_id, clock_.Now());
        if (!recorded) {
            if (recorded.error().code() != ErrorCode::kAlreadyExists) {
                co_return std::unexpected(recorded.error());
            }
            DeliveryOutcome duplicate{"duplicate", "", ""};
            if (input && launcher_) {
                // The start again with the same key: it names the run the first delivery
                // started, or starts it if a crash came between the record and the start.
                Origin origin{"webhook", hook->name, delivery.delivery_id, 0};
                auto again = co_await launcher_->StartWorkflow(hook->workflow_id, std::move(*input),
                                                               origin, key);
                if (again) duplicate.run_id = *again;
            }
            co_return duplicate;
        }
    }
    DeliveryOutcome outcome;
    if (input) {
        if (!launcher_) co_return UnavailableError("webhooks: no launcher");
        Origin origin{"webhook", hook->name, delivery.delivery_id, 0};
        STROWGER_CO_ASSIGN_OR_RETURN(
            outcome.run_id,
            co_await launcher_->StartWorkflow(hook->workflow_id, std::move(*input), origin, key));
        outcome.status = "started";
        if (!delivery.delivery_id.empty()) {
            auto noted = co_await store_->SetWebhookDeliveryRun(hook->name, delivery.delivery_id,
                                                                outcome.run_id);
            if (!noted) spdlog::warn("webhook {}: {}", hook->name, noted.error().message());
        }
        co_return outcome;
    }
    BusEvent event;
    event.kind = EventKind::kSystem;
    event.type = "webhook";
    event.subject = "hook:" + hook->name;
    event.description = "Webhook '" + hook->name + "' received" +
                        (delivery.delivery_id.empty() ? "" : " delivery " + delivery.delivery_id) +
                        ": " + EscapeControl(Preview(delivery.body, 200), Newlines::kEscape);
    if (!delivery.delivery_id.empty()) event.id = key;
    bus_.Publish(event);
    outcome.status = "accepted";
    outcome.event_id = bus_.Recent(1).empty() ? event.id : bus_.Recent(1).back().id;
    co_return outcome;
}

}  // namespace strowger::automation
