// Signed checkpoints: keys, the Merkle tree, the batch message, the signer's batching and the
// verifier's findings, over the in-memory store (the SQLite store runs the same interface in
// tests/store, and the whole path through the binary in tests/integration/tamper_test.cpp).
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "audit/anchors.hpp"
#include "audit/signer.hpp"
#include "audit/verifier.hpp"
#include "core/ed25519.hpp"
#include "ledger/chain.hpp"
#include "ledger/checkpoint.hpp"
#include "store/memory/memory_store.hpp"

namespace strowger::audit {
namespace {

template <typename T>
T RunOn(asio::io_context& io, Awaitable<T> operation) {
    std::optional<T> out;
    asio::co_spawn(io, std::move(operation), [&](std::exception_ptr error, T value) {
        if (error) std::rethrow_exception(error);
        out.emplace(std::move(value));
    });
    io.restart();
    io.run();
    EXPECT_TRUE(out.has_value());
    return std::move(*out);
}

std::filesystem::path TempDir() {
    auto dir = std::filesystem::temp_directory_path() /
               ("strowger-audit-test-" + std::to_string(getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

TEST(Ed25519Test, SignsAndVerifiesAndRejectsTampering) {
    auto key = SigningKey::Generate();
    ASSERT_TRUE(key.has_value());
    std::string signature = key->Sign("hello");
    EXPECT_EQ(signature.size(), 128u);
    EXPECT_TRUE(key->verifying_key().Verify("hello", signature));
    EXPECT_FALSE(key->verifying_key().Verify("hellO", signature));
    std::string flipped = signature;
    flipped[5] = flipped[5] == '0' ? '1' : '0';
    EXPECT_FALSE(key->verifying_key().Verify("hello", flipped));
    EXPECT_FALSE(key->verifying_key().Verify("hello", "zz"));
    auto other = SigningKey::Generate();
    EXPECT_FALSE(other->verifying_key().Verify("hello", signature));
    EXPECT_NE(other->verifying_key().id(), key->verifying_key().id());
    EXPECT_EQ(key->verifying_key().id().size(), 16u);
}

TEST(Ed25519Test, PemRoundTripsAndTheKeyFileIsPrivate) {
    auto dir = TempDir();
    std::string path = (dir / "store.db.key").string();
    auto created = SigningKey::LoadOrCreateBlocking(path);
    ASSERT_TRUE(created.has_value()) << created.error().message();
    struct stat info;
    ASSERT_EQ(::stat(path.c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    auto again = SigningKey::LoadOrCreateBlocking(path);
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->verifying_key().id(), created->verifying_key().id());
    auto pub = VerifyingKey::FromPem(created->verifying_key().Pem());
    ASSERT_TRUE(pub.has_value());
    EXPECT_EQ(pub->id(), created->verifying_key().id());
    EXPECT_TRUE(pub->Verify("x", created->Sign("x")));
    // A key others can read is refused, with the fix named.
    ::chmod(path.c_str(), 0644);
    auto open = SigningKey::LoadOrCreateBlocking(path);
    ASSERT_FALSE(open.has_value());
    EXPECT_NE(open.error().message().find("chmod 600"), std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST(MerkleTest, EveryLeafsPathLeadsToTheRootForEverySize) {
    for (size_t count = 1; count <= 33; ++count) {
        std::vector<ledger::CheckpointLeaf> leaves;
        std::vector<ledger::Digest> hashes;
        for (size_t i = 0; i < count; ++i) {
            leaves.push_back({"run" + std::to_string(i), static_cast<int64_t>(i + 1),
                              std::string(64, static_cast<char>('a' + i % 6))});
            hashes.push_back(ledger::LeafHash(leaves.back()));
        }
        const ledger::Digest root = ledger::MerkleRoot(hashes);
        for (size_t i = 0; i < count; ++i) {
            auto path = ledger::MerklePath(hashes, i);
            EXPECT_EQ(ledger::RootFromPath(hashes[i], path), root) << count << " " << i;
            // Another leaf's hash does not lead there.
            ledger::Digest wrong = hashes[i];
            wrong[0] ^= 1;
            EXPECT_NE(ledger::RootFromPath(wrong, path), root);
        }
    }
}

TEST(CheckpointTest, LeavesRoundTripAndDueRule) {
    std::vector<ledger::CheckpointLeaf> leaves = {{"a", 1, std::string(64, '0')},
                                                  {"b", 22, std::string(64, 'f')}};
    auto decoded = ledger::DecodeLeaves(ledger::EncodeLeaves(leaves));
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(*decoded, leaves);
    EXPECT_FALSE(ledger::DecodeLeaves("a 1").has_value());
    EXPECT_FALSE(ledger::DecodeLeaves("a x h\n").has_value());
    using ledger::RunStatus;
    EXPECT_TRUE(ledger::CheckpointDue(5, 6, RunStatus::kCompleted));
    EXPECT_TRUE(ledger::CheckpointDue(5, 6, RunStatus::kWaiting));
    EXPECT_FALSE(ledger::CheckpointDue(5, 6, RunStatus::kRunning));
    EXPECT_TRUE(ledger::CheckpointDue(127, 129, RunStatus::kRunning));
    EXPECT_FALSE(ledger::CheckpointDue(128, 129, RunStatus::kRunning));
}

// A store with `runs` runs of `events` events each, and their hashes.
struct Fixture {
    asio::io_context io{1};
    std::shared_ptr<store::MemoryStore> store = std::make_shared<store::MemoryStore>();
    std::shared_ptr<const SigningKey> key =
        std::make_shared<const SigningKey>(*SigningKey::Generate());
    std::map<std::string, std::vector<std::string>> hashes;

    void AddRun(const std::string& run_id, int events, ledger::RunStatus status) {
        ledger::ChainHead head;
        store::NewRun run;
        run.run_id = run_id;
        run.workflow = "wf";
        run.definition_sha256 = "sha";
        run.status = status;
        for (int i = 0; i < events; ++i) {
            ledger::NewEvent event{"", 0, ledger::RunStarted{}};
            if (i == 0) event.payload = ledger::RunCreated{"wf", "sha", "in", "", ""};
            run.events.push_back(ledger::Seal(head, run_id, SystemTime{}, event));
            hashes[run_id].push_back(head.hash);
        }
        auto created = RunOn(io, store->CreateRun(std::move(run)));
        ASSERT_TRUE(created.has_value()) << created.error().message();
    }
    Result<std::optional<Finding>> Check(
        CheckpointVerifier& verifier, const std::string& run_id,
        std::function<bool(const ledger::CheckpointLeaf&)> pending = {}) {
        auto record = RunOn(io, store->GetRun(run_id));
        EXPECT_TRUE(record.has_value());
        return RunOn(io, verifier.CheckRun(*store, *record, hashes[run_id], pending));
    }
};

TEST(SignerTest, BatchesLeavesUnderOneSignatureAndTheVerifierAcceptsThem) {
    Fixture f;
    for (int i = 0; i < 50; ++i)
        f.AddRun("run" + std::to_string(i), 3, ledger::RunStatus::kCompleted);
    auto signer = CheckpointSigner::Create(f.io.get_executor(), f.store, f.key);
    for (int i = 0; i < 50; ++i) {
        std::string id = "run" + std::to_string(i);
        signer->Add({id, 3, f.hashes[id].back()});
    }
    EXPECT_TRUE(signer->Pending({"run7", 3, f.hashes["run7"].back()}));
    ASSERT_TRUE(RunOn(f.io, signer->Flush()).has_value());
    EXPECT_FALSE(signer->Pending({"run7", 3, f.hashes["run7"].back()}));
    EXPECT_EQ(signer->batches_signed(), 1);
    auto batches = RunOn(f.io, f.store->ReadCheckpointBatches(1, 10));
    ASSERT_TRUE(batches.has_value());
    ASSERT_EQ(batches->size(), 1u);
    EXPECT_EQ(batches->front().leaves.size(), 50u);
    EXPECT_EQ(batches->front().prev_hash, std::string(ledger::kGenesisHash));

    CheckpointVerifier verifier(std::make_shared<const VerifyingKey>(f.key->verifying_key()));
    for (int i = 0; i < 50; ++i) {
        auto found = f.Check(verifier, "run" + std::to_string(i));
        ASSERT_TRUE(found.has_value());
        EXPECT_FALSE(found->has_value()) << (*found)->Describe();
    }
    auto log = RunOn(f.io, VerifyBatchLog(*f.store, verifier, nullptr));
    ASSERT_TRUE(log.has_value());
    EXPECT_FALSE(log->finding.has_value());
    EXPECT_EQ(log->batches, 1);
    EXPECT_EQ(log->leaves, 50);
}

TEST(SignerTest, SecondSignerChainsOnTopOfTheFirst) {
    Fixture f;
    f.AddRun("a", 2, ledger::RunStatus::kCompleted);
    f.AddRun("b", 2, ledger::RunStatus::kCompleted);
    auto first = CheckpointSigner::Create(f.io.get_executor(), f.store, f.key);
    auto second = CheckpointSigner::Create(f.io.get_executor(), f.store, f.key);
    first->Add({"a", 2, f.hashes["a"].back()});
    ASSERT_TRUE(RunOn(f.io, first->Flush()).has_value());
    second->Add({"b", 2, f.hashes["b"].back()});
    ASSERT_TRUE(RunOn(f.io, second->Flush()).has_value());
    first->Add({"a", 2, f.hashes["a"].back()});  // first's view of the log is stale now
    ASSERT_TRUE(RunOn(f.io, first->Flush()).has_value());
    CheckpointVerifier verifier(std::make_shared<const VerifyingKey>(f.key->verifying_key()));
    auto log = RunOn(f.io, VerifyBatchLog(*f.store, verifier, nullptr));
    ASSERT_TRUE(log.has_value());
    EXPECT_FALSE(log->finding.has_value()) << log->finding->Describe("batch");
    EXPECT_EQ(log->batches, 3);
}

TEST(VerifierTest, FindsARecomputedChainATruncatedTailAndAnUnsignedStop) {
    Fixture f;
    f.AddRun("run", 4, ledger::RunStatus::kCompleted);
    auto signer = CheckpointSigner::Create(f.io.get_executor(), f.store, f.key);
    signer->Add({"run", 4, f.hashes["run"].back()});
    ASSERT_TRUE(RunOn(f.io, signer->Flush()).has_value());
    CheckpointVerifier verifier(std::make_shared<const VerifyingKey>(f.key->verifying_key()));

    // The chain as verified, rewritten from seq 2 on (hashes recomputed): the signed head no
    // longer matches.
    auto saved = f.hashes["run"];
    f.hashes["run"][3] = std::string(64, 'e');
    auto found = f.Check(verifier, "run");
    ASSERT_TRUE(found.has_value() && found->has_value());
    EXPECT_EQ((*found)->reason, "checkpoint mismatch");
    EXPECT_EQ((*found)->seq, 4);

    // Cut to three events: a signed seq beyond the end.
    f.hashes["run"] = {saved[0], saved[1], saved[2]};
    found = f.Check(verifier, "run");
    ASSERT_TRUE(found.has_value() && found->has_value());
    EXPECT_EQ((*found)->reason, "truncated");

    // Another key's verifier: the batch is not this store's.
    f.hashes["run"] = saved;
    CheckpointVerifier stranger(
        std::make_shared<const VerifyingKey>(SigningKey::Generate()->verifying_key()));
    found = f.Check(stranger, "run");
    ASSERT_TRUE(found.has_value() && found->has_value());
    EXPECT_EQ((*found)->reason, "unknown key");

    // A stopped run nobody signed.
    f.AddRun("unsigned", 2, ledger::RunStatus::kFailed);
    found = f.Check(verifier, "unsigned");
    ASSERT_TRUE(found.has_value() && found->has_value());
    EXPECT_EQ((*found)->reason, "unsigned stop");
    // ... unless this process is about to sign it.
    found = f.Check(verifier, "unsigned", [](const ledger::CheckpointLeaf&) { return true; });
    ASSERT_TRUE(found.has_value());
    EXPECT_FALSE(found->has_value());
    // A running run's unsigned tail is expected.
    f.AddRun("running", 2, ledger::RunStatus::kRunning);
    found = f.Check(verifier, "running");
    ASSERT_TRUE(found.has_value());
    EXPECT_FALSE(found->has_value());
}

TEST(SignerTest, AnExpectedLeafIsPendingUntilAddedAndSignedOrForgotten) {
    Fixture f;
    f.AddRun("a", 2, ledger::RunStatus::kCompleted);
    f.AddRun("b", 2, ledger::RunStatus::kCompleted);
    auto signer = CheckpointSigner::Create(f.io.get_executor(), f.store, f.key);
    const ledger::CheckpointLeaf a{"a", 2, f.hashes["a"].back()};
    const ledger::CheckpointLeaf b{"b", 2, f.hashes["b"].back()};
    // Announced before its append commits: pending, though nothing is queued to sign.
    signer->Expect(a);
    signer->Expect(b);
    EXPECT_TRUE(signer->Pending(a));
    EXPECT_TRUE(signer->Pending(b));
    EXPECT_FALSE(signer->HasPending());
    // The append of b failed: b is no longer pending; a committed and is queued.
    signer->Forget(b);
    EXPECT_FALSE(signer->Pending(b));
    signer->Add(a);
    EXPECT_TRUE(signer->Pending(a));
    ASSERT_TRUE(RunOn(f.io, signer->Flush()).has_value());
    // Signed and stored: pending no more (the expectation ended with Add).
    EXPECT_FALSE(signer->Pending(a));
    CheckpointVerifier verifier(std::make_shared<const VerifyingKey>(f.key->verifying_key()));
    auto found = f.Check(verifier, "a");
    ASSERT_TRUE(found.has_value());
    EXPECT_FALSE(found->has_value()) << (*found)->Describe();
    found = f.Check(verifier, "b");
    ASSERT_TRUE(found.has_value() && found->has_value());
    EXPECT_EQ((*found)->reason, "unsigned stop");
}

// Reads checkpoints as they were before a batch was stored, and tells when it has.
class StaleCheckpointsStore final : public store::MemoryStore {
  public:
    Awaitable<Result<std::vector<store::StoredCheckpoint>>> ReadCheckpoints(
        std::string /*run_id*/) override {
        read = true;
        co_return std::vector<store::StoredCheckpoint>{};
    }
    bool read = false;
};

TEST(VerifierTest, AsksWhetherTheStopIsPendingBeforeReadingTheCheckpoints) {
    // The signer stores the stop's batch while the verifier reads: the read does not show the
    // batch, and the signer no longer holds the leaf after it. Asked before the read, the stop
    // is pending; asked after, it would be in neither ("unsigned stop", the CI flake).
    Fixture f;
    auto stale = std::make_shared<StaleCheckpointsStore>();
    f.store = stale;
    f.AddRun("run", 3, ledger::RunStatus::kCompleted);
    CheckpointVerifier verifier(std::make_shared<const VerifyingKey>(f.key->verifying_key()));
    auto found =
        f.Check(verifier, "run", [&](const ledger::CheckpointLeaf&) { return !stale->read; });
    ASSERT_TRUE(found.has_value());
    EXPECT_FALSE(found->has_value()) << (*found)->Describe();
    EXPECT_TRUE(stale->read);
}

TEST(VerifierTest, BatchLogFindsAForgedBatch) {
    Fixture f;
    f.AddRun("run", 2, ledger::RunStatus::kCompleted);
    auto signer = CheckpointSigner::Create(f.io.get_executor(), f.store, f.key);
    signer->Add({"run", 2, f.hashes["run"].back()});
    ASSERT_TRUE(RunOn(f.io, signer->Flush()).has_value());
    // A second batch signed by someone else's key, appended by a store writer.
    auto last = RunOn(f.io, f.store->LastCheckpointBatch());
    ledger::CheckpointBatch forged;
    forged.batch_seq = 2;
    forged.prev_hash = ledger::BatchHash(**last);
    forged.leaves = {{"run", 1, f.hashes["run"][0]}};
    forged.root = ledger::ComputeRoot(forged.leaves);
    forged.key_id = f.key->verifying_key().id();  // claims the store's key
    auto thief = SigningKey::Generate();
    forged.signature = thief->Sign(ledger::BatchMessage(forged));
    ASSERT_TRUE(RunOn(f.io, f.store->AppendCheckpointBatch(forged)).has_value());
    CheckpointVerifier verifier(std::make_shared<const VerifyingKey>(f.key->verifying_key()));
    auto log = RunOn(f.io, VerifyBatchLog(*f.store, verifier, nullptr));
    ASSERT_TRUE(log.has_value());
    ASSERT_TRUE(log->finding.has_value());
    EXPECT_EQ(log->finding->seq, 2);
    EXPECT_EQ(log->finding->reason, "bad signature");
}

TEST(SignerTest, RecoversUnsignedStopsOnlyWhereTheVerifierAgrees) {
    Fixture f;
    f.AddRun("good", 3, ledger::RunStatus::kCompleted);
    f.AddRun("bad", 3, ledger::RunStatus::kCompleted);
    f.AddRun("busy", 3, ledger::RunStatus::kRunning);
    auto signer = CheckpointSigner::Create(f.io.get_executor(), f.store, f.key);
    std::vector<std::string> asked;
    CheckpointSigner::VerifyFn verify = [&](store::RunRecord record) -> Awaitable<Result<bool>> {
        asked.push_back(record.run_id);
        co_return record.run_id != "bad";
    };
    auto signed_count = RunOn(f.io, signer->RecoverUnsignedStops(verify));
    ASSERT_TRUE(signed_count.has_value()) << signed_count.error().message();
    EXPECT_EQ(*signed_count, 1);
    EXPECT_EQ(asked, (std::vector<std::string>{"bad", "good"}));
    auto batches = RunOn(f.io, f.store->ReadCheckpointBatches(1, 10));
    ASSERT_EQ(batches->size(), 1u);
    EXPECT_TRUE(batches->front().recovered);
    auto good = RunOn(f.io, f.store->GetRun("good"));
    EXPECT_EQ(good->checkpoint_seq, 3);
}

TEST(AnchorsTest, FormatsAndParsesAndNamesTheBadLine) {
    Anchor run;
    run.run_id = "01JD3M6K9Q3V8C6Y2W5T0R1N7H";
    run.seq = 22;
    run.hash = std::string(64, 'a');
    Anchor batches;
    batches.kind = Anchor::Kind::kBatches;
    batches.seq = 3;
    batches.hash = std::string(64, 'b');
    std::string text =
        "# kept on host x\n" + FormatAnchor(run) + "\n" + FormatAnchor(batches) + "\n";
    auto parsed = ParseAnchors(text, "anchors.log");
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message();
    ASSERT_EQ(parsed->size(), 2u);
    EXPECT_EQ((*parsed)[0].run_id, run.run_id);
    EXPECT_EQ((*parsed)[0].seq, 22);
    EXPECT_EQ((*parsed)[0].line, 2);
    EXPECT_EQ((*parsed)[1].kind, Anchor::Kind::kBatches);
    auto bad = ParseAnchors("strowger-anchor v1 run X 5 nothex 2026-01-01T00:00:00.000000Z\n",
                            "anchors.log");
    ASSERT_FALSE(bad.has_value());
    EXPECT_NE(bad.error().message().find("anchors.log:1"), std::string::npos);
}

}  // namespace
}  // namespace strowger::audit
