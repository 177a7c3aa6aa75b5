// The tamper suite (docs/design/audit.md): real SQLite files edited as someone with write
// access to the store would, the real binary reading them back. For each way of tampering:
// the exact `audit verify` verdict, every command that rebuilds a run from its ledger
// (`runs resume`, `runs retry`, `approve`) refusing with exit 5 and nothing appended,
// `scripts/verify_ledger.py` agreeing on the export, and the rewrites that recompute hashes
// caught by signed checkpoints or by anchors kept outside the store.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/json.hpp"
#include "core/sha256.hpp"
#include "integration/harness.hpp"
#include "ledger/event.hpp"
#include "testing/test_util.hpp"

namespace strowger::testing {
namespace {

using std::chrono::seconds;

// Three steps; b fails unless its attempt is 2 (so `runs retry` of the failed run would
// complete: it must be refused before it gets there).
constexpr char kThreeSteps[] = R"y(name: three
agents:
  echo: {model: "scripted:script.yaml"}
steps:
  - {name: a, agent_name: echo, prompt: "A {{input}}"}
  - {name: b, agent_name: echo, prompt: "B {{input}}"}
  - {name: c, agent_name: echo, prompt: "C {{input}}"}
)y";
constexpr char kScript[] = R"y(rules:
  - {when: {step: b, attempt: 1, prompt_contains: "fail"}, error: "upstream exploded", error_code: invalid_argument}
  - {reply_template: "${step}(${prompt})"}
)y";

// One step whose agent asks for a tool that needs approval: the run waits.
constexpr char kApproval[] = R"y(name: approval
agents:
  ops:
    model: "scripted:approval-script.yaml"
    tools: [read_file]
    require_approval: [read_file]
steps:
  - {name: look, agent_name: ops, prompt: "Look"}
)y";
constexpr char kApprovalScript[] = R"y(rules:
  - when: {prompt_contains: "Look"}
    tool_calls: [{name: read_file, arguments: {path: notes.txt}}]
  - {reply_template: "saw: ${prompt}"}
)y";

// The canonical line of `event` with its hash recomputed from its fields: what a tamperer
// who knows the format writes.
std::string Reseal(const ledger::Event& event) {
    std::string body =
        ledger::EncodeEvent(event.seq, event.run_id, event.time, event.type_name, event.node,
                            event.attempt, event.data, event.prev_hash, {});
    std::string hash = Sha256Hex(event.prev_hash, body);
    return ledger::EncodeEvent(event.seq, event.run_id, event.time, event.type_name, event.node,
                               event.attempt, event.data, event.prev_hash, hash);
}

class TamperTest : public ::testing::Test {
  protected:
    void SetUp() override {
        env_.Write("workflow.yaml", kThreeSteps);
        env_.Write("script.yaml", kScript);
        env_.Write("approval.yaml", kApproval);
        env_.Write("approval-script.yaml", kApprovalScript);
        env_.Write("notes.txt", "the notes");
        // A failed run (for retry) and a waiting run (for resume and approve).
        auto failed = env_.Run({"run", "workflow.yaml", "--input", "fail"});
        ASSERT_EQ(failed.exit_code(), 1) << failed.err;
        auto waiting = env_.Run({"run", "approval.yaml"});
        ASSERT_EQ(waiting.exit_code(), 3) << waiting.err;
        auto ids = env_.RunIds();
        ASSERT_EQ(ids.size(), 2u);
        failed_ = ids[0];
        waiting_ = ids[1];
        ASSERT_EQ(env_.RunStatus(failed_), "failed");
        ASSERT_EQ(env_.RunStatus(waiting_), "waiting");
        // Both verify untouched, and are anchored outside the store.
        auto verify = env_.Run({"audit", "verify", "--all"});
        ASSERT_EQ(verify.exit_code(), 0) << verify.out << verify.err;
        auto anchor = env_.Run({"audit", "anchor", "--all"});
        ASSERT_EQ(anchor.exit_code(), 0) << anchor.err;
        env_.Write("anchors.log", anchor.out);
        events_before_[failed_] = env_.Events(failed_).size();
        events_before_[waiting_] = env_.Events(waiting_).size();
    }

    std::string db() const { return env_.store_path(); }
    std::vector<std::string> StoredLines(const std::string& run_id) const {
        std::vector<std::string> lines;
        for (const auto& event : env_.Events(run_id)) lines.push_back(event.line);
        return lines;
    }
    void SetLine(const std::string& run_id, int64_t seq, const std::string& line) {
        EXPECT_EQ(ExecSql(db(), "UPDATE events SET line = ? WHERE run_id = ? AND seq = ?",
                          {line, run_id, std::to_string(seq)}),
                  1);
    }
    void DeleteEvents(const std::string& run_id, int64_t from_seq, int64_t to_seq) {
        EXPECT_EQ(ExecSql(db(), "DELETE FROM events WHERE run_id = ? AND seq >= ? AND seq <= ?",
                          {run_id, std::to_string(from_seq), std::to_string(to_seq)}),
                  to_seq - from_seq + 1);
    }
    int64_t Length(const std::string& run_id) const {
        return static_cast<int64_t>(env_.Events(run_id).size());
    }
    // Makes the run row's head what the ledger's last event says: what hides a truncation
    // from the store's recorded head.
    void RewriteHead(const std::string& run_id) {
        auto events = env_.Events(run_id);
        auto last = ledger::DecodeEvent(events.back().line);
        ASSERT_TRUE(last.has_value());
        ExecSql(db(), "UPDATE runs SET head_seq = ?, head_hash = ? WHERE run_id = ?",
                {std::to_string(last->seq), last->hash, run_id});
    }
    // Recomputes every hash from `from_seq` on (each line's prev_hash and hash), after `edit`
    // changed the decoded events, and the run's head: a rewrite the chain cannot see.
    void RecomputeChain(const std::string& run_id,
                        const std::function<void(std::vector<ledger::Event>&)>& edit) {
        std::vector<ledger::Event> events;
        for (const auto& line : StoredLines(run_id)) {
            auto event = ledger::DecodeEvent(line);
            ASSERT_TRUE(event.has_value());
            events.push_back(std::move(*event));
        }
        edit(events);
        std::string prev(ledger::kGenesisHash);
        for (auto& event : events) {
            event.prev_hash = prev;
            std::string line = Reseal(event);
            auto resealed = ledger::DecodeEvent(line);
            ASSERT_TRUE(resealed.has_value());
            prev = resealed->hash;
            SetLine(run_id, event.seq, line);
        }
        RewriteHead(run_id);
    }

    // `audit verify RUN`: exit 1 and one line naming the seq and the reason.
    void ExpectVerifyBroken(const std::string& run_id, int64_t seq, const std::string& reason) {
        auto result = env_.Run({"audit", "verify", run_id});
        EXPECT_EQ(result.exit_code(), 1) << result.out << result.err;
        std::string expected = run_id + ": BROKEN at seq " + std::to_string(seq) + ": " + reason;
        EXPECT_TRUE(result.out.starts_with(expected))
            << "expected \"" << expected << "...\", got " << result.out;
        EXPECT_EQ(Lines(result.out).size(), 1u) << result.out;
    }
    // Every command that rebuilds the run from its ledger refuses: exit 5, one line naming the
    // run, the seq and the reason, and nothing appended.
    void ExpectRefused(const std::string& run_id, const std::vector<std::string>& command,
                       int64_t seq, const std::string& reason) {
        const int64_t before = Length(run_id);
        const std::string status = env_.RunStatus(run_id);
        auto result = env_.Run(command);
        EXPECT_EQ(result.exit_code(), 5) << result.out << result.err;
        std::string expected = "strowger: run " + run_id + ": ledger does not verify at seq " +
                               std::to_string(seq) + ": " + reason;
        EXPECT_TRUE(result.err.starts_with(expected))
            << command[0] << ": expected \"" << expected << "...\", got " << result.err;
        EXPECT_EQ(Lines(result.err).size(), 1u) << result.err;
        EXPECT_EQ(Length(run_id), before) << command[0] << " appended to a tampered ledger";
        EXPECT_EQ(env_.RunStatus(run_id), status);
    }
    void ExpectAllRefuse(int64_t failed_seq, const std::string& failed_reason, int64_t waiting_seq,
                         const std::string& waiting_reason) {
        ExpectRefused(failed_, {"runs", "retry", failed_}, failed_seq, failed_reason);
        ExpectRefused(waiting_, {"runs", "resume", waiting_}, waiting_seq, waiting_reason);
        ExpectRefused(waiting_, {"approve", waiting_}, waiting_seq, waiting_reason);
    }
    // verify_ledger.py on the run's export (with its definition and the public key).
    CommandResult VerifyExport(const std::string& run_id) {
        auto pubkey = env_.Run({"audit", "pubkey"});
        EXPECT_EQ(pubkey.exit_code(), 0);
        env_.Write("ledger.pub", pubkey.out);
        auto exported = env_.Run(
            {"audit", "export", run_id, "-o", "run.jsonl", "--definition", "run.definition.json"});
        EXPECT_EQ(exported.exit_code(), 0) << exported.err;
        return env_.RunProgram({"python3", SourceDir() + "/scripts/verify_ledger.py", "run.jsonl",
                                "run.definition.json", "--pubkey", "ledger.pub"},
                               seconds(30));
    }
    CommandResult VerifyWithAnchors() {
        return env_.Run({"audit", "verify", "--all", "--anchors", "anchors.log"});
    }

    CliEnvironment env_;
    std::string failed_, waiting_;
    std::map<std::string, size_t> events_before_;
};

TEST_F(TamperTest, UntouchedRunsVerifyEverywhere) {
    for (const auto& run_id : {failed_, waiting_}) {
        auto verify = env_.Run({"audit", "verify", run_id});
        EXPECT_EQ(verify.exit_code(), 0) << verify.out;
        EXPECT_TRUE(verify.out.starts_with(run_id + ": ok (" + std::to_string(Length(run_id)) +
                                           " events, 1 signed checkpoints, head "))
            << verify.out;
        auto script = VerifyExport(run_id);
        EXPECT_EQ(script.exit_code(), 0) << script.out << script.err;
        EXPECT_TRUE(script.out.starts_with("ok " + std::to_string(Length(run_id)) + " events"))
            << script.out;
        EXPECT_NE(script.out.find("1 checkpoints (signatures verified)"), std::string::npos)
            << script.out;
    }
    auto anchored = VerifyWithAnchors();
    EXPECT_EQ(anchored.exit_code(), 0) << anchored.out;
    EXPECT_TRUE(anchored.out.ends_with("2 runs verified, 0 broken; 2 checkpoint batches\n"))
        << anchored.out;
    // The untouched runs can still be decided on and retried.
    auto approve = env_.Run({"approve", waiting_});
    EXPECT_EQ(approve.exit_code(), 0) << approve.err;
    auto retry = env_.Run({"runs", "retry", failed_});
    EXPECT_EQ(retry.exit_code(), 0) << retry.err;
    EXPECT_EQ(env_.Run({"audit", "verify", "--all", "--anchors", "anchors.log"}).exit_code(), 0);
}

TEST_F(TamperTest, FlippedPayloadByte) {
    for (const auto& run_id : {failed_, waiting_}) {
        std::string line = StoredLines(run_id)[3];  // seq 4: the first step's llm.request
        size_t at = line.find("\"prompt\":\"");
        ASSERT_NE(at, std::string::npos) << line;
        at += 10;
        line[at] = line[at] == 'x' ? 'y' : 'x';
        SetLine(run_id, 4, line);
        ExpectVerifyBroken(run_id, 4, "hash mismatch");
        auto script = VerifyExport(run_id);
        EXPECT_EQ(script.exit_code(), 1);
        EXPECT_EQ(script.out, "BROKEN: seq 4: hash mismatch\n");
    }
    ExpectAllRefuse(4, "hash mismatch", 4, "hash mismatch");
}

TEST_F(TamperTest, DeletedMiddleEvent) {
    DeleteEvents(failed_, 4, 4);
    DeleteEvents(waiting_, 4, 4);
    ExpectVerifyBroken(failed_, 4, "gap");
    ExpectAllRefuse(4, "gap", 4, "gap");
    auto script = VerifyExport(failed_);
    EXPECT_EQ(script.exit_code(), 1);
    EXPECT_TRUE(script.out.starts_with("BROKEN: seq 4: gap or reorder")) << script.out;
}

TEST_F(TamperTest, SwappedEventData) {
    // The data objects of two events trade places; the lines keep their own headers.
    for (const auto& run_id : {failed_, waiting_}) {
        auto lines = StoredLines(run_id);
        auto first = ledger::DecodeEvent(lines[3]);
        auto second = ledger::DecodeEvent(lines[4]);
        ASSERT_TRUE(first && second);
        std::swap(first->data, second->data);
        SetLine(run_id, 4,
                ledger::EncodeEvent(first->seq, first->run_id, first->time, first->type_name,
                                    first->node, first->attempt, first->data, first->prev_hash,
                                    first->hash));
        SetLine(run_id, 5,
                ledger::EncodeEvent(second->seq, second->run_id, second->time, second->type_name,
                                    second->node, second->attempt, second->data, second->prev_hash,
                                    second->hash));
        ExpectVerifyBroken(run_id, 4, "hash mismatch");
    }
    ExpectAllRefuse(4, "hash mismatch", 4, "hash mismatch");
    auto script = VerifyExport(waiting_);
    EXPECT_EQ(script.out, "BROKEN: seq 4: hash mismatch\n");
}

TEST_F(TamperTest, TruncatedTail) {
    for (const auto& run_id : {failed_, waiting_}) {
        const int64_t length = Length(run_id);
        DeleteEvents(run_id, length - 1, length);
        ExpectVerifyBroken(run_id, length - 1, "truncated");
    }
    ExpectAllRefuse(Length(failed_) + 1, "truncated", Length(waiting_) + 1, "truncated");
    // The export of what is left: its last signed checkpoint is past its end.
    auto script = VerifyExport(failed_);
    EXPECT_EQ(script.exit_code(), 1);
    EXPECT_TRUE(script.out.find("truncated") != std::string::npos) << script.out;
}

TEST_F(TamperTest, OneLineRehashed) {
    // An edited line with its own hash recomputed: the next line no longer links to it.
    for (const auto& run_id : {failed_, waiting_}) {
        auto event = ledger::DecodeEvent(StoredLines(run_id)[3]);  // seq 4: llm.request
        ASSERT_TRUE(event.has_value());
        size_t at = event->data.find("\"prompt\":\"");
        ASSERT_NE(at, std::string::npos) << event->data;
        event->data.insert(at + 10, "forged ");
        SetLine(run_id, 4, Reseal(*event));
        ExpectVerifyBroken(run_id, 5, "prev_hash mismatch");
    }
    ExpectAllRefuse(5, "prev_hash mismatch", 5, "prev_hash mismatch");
    auto script = VerifyExport(failed_);
    EXPECT_EQ(script.out, "BROKEN: seq 5: prev_hash mismatch\n");
}

TEST_F(TamperTest, EditedDefinitionSnapshot) {
    // Grant the agent a tool it never had, in the stored definition the run is pinned to.
    auto sha =
        QueryColumn(db(), "SELECT definition_sha256 FROM runs WHERE run_id = '" + waiting_ + "'");
    ASSERT_EQ(sha.size(), 1u);
    auto json = QueryColumn(db(), "SELECT json FROM definitions WHERE sha256 = '" + sha[0] + "'");
    ASSERT_EQ(json.size(), 1u);
    std::string edited = json[0];
    size_t at = edited.find("\"read_file\"");
    ASSERT_NE(at, std::string::npos) << edited;
    edited.replace(at, 11, "\"read_file\",\"shell\"");
    EXPECT_EQ(ExecSql(db(), "UPDATE definitions SET json = ? WHERE sha256 = ?", {edited, sha[0]}),
              1);
    ExpectVerifyBroken(waiting_, 1, "definition mismatch");
    ExpectRefused(waiting_, {"runs", "resume", waiting_}, 1, "definition mismatch");
    ExpectRefused(waiting_, {"approve", waiting_}, 1, "definition mismatch");
    auto script = VerifyExport(waiting_);
    EXPECT_EQ(script.out, "BROKEN: the definition file is not the one the run was pinned to\n");
}

TEST_F(TamperTest, DeletedDefinitionRow) {
    auto sha =
        QueryColumn(db(), "SELECT definition_sha256 FROM runs WHERE run_id = '" + failed_ + "'");
    ASSERT_EQ(sha.size(), 1u);
    EXPECT_EQ(ExecSql(db(), "DELETE FROM definitions WHERE sha256 = ?", {sha[0]}), 1);
    ExpectVerifyBroken(failed_, 1, "definition missing");
    ExpectRefused(failed_, {"runs", "retry", failed_}, 1, "definition missing");
}

TEST_F(TamperTest, FinishedRunSetBackToRunning) {
    EXPECT_EQ(ExecSql(db(), "UPDATE runs SET status = 'running' WHERE run_id = ?", {failed_}), 1);
    const int64_t last = Length(failed_);
    ExpectVerifyBroken(failed_, last, "status mismatch");
    // Resume would append run.resumed and finish a failed run a second time.
    ExpectRefused(failed_, {"runs", "resume", failed_}, last, "status mismatch");
    auto all = env_.Run({"runs", "resume", "--all"});
    EXPECT_EQ(all.exit_code(), 5) << all.out << all.err;
    EXPECT_NE(all.err.find("status mismatch"), std::string::npos) << all.err;
    EXPECT_EQ(Length(failed_), last);
}

TEST_F(TamperTest, TruncatedTailWithRewrittenHeadIsCaughtBySignaturesAndAnchors) {
    // Cut the failure off and make the row agree: the chain verifies, the head matches.
    const int64_t length = Length(failed_);
    DeleteEvents(failed_, length - 1, length);
    RewriteHead(failed_);
    ExecSql(db(), "UPDATE runs SET status = 'running' WHERE run_id = ?", {failed_});
    // The signed checkpoint of the run's stop names a seq the ledger no longer has.
    ExpectVerifyBroken(failed_, length, "truncated");
    ExpectRefused(failed_, {"runs", "resume", failed_}, length, "truncated");
    // Delete the run's checkpoint rows too: the signed batch log still lists its head.
    ExecSql(db(), "DELETE FROM checkpoints WHERE run_id = ?", {failed_});
    ExecSql(db(), "UPDATE runs SET checkpoint_seq = 0 WHERE run_id = ?", {failed_});
    ExpectVerifyBroken(failed_, length, "truncated");
    // And the anchor taken before the tampering.
    auto anchored = VerifyWithAnchors();
    EXPECT_EQ(anchored.exit_code(), 1);
    EXPECT_NE(anchored.out.find(failed_ + ": BROKEN at seq " + std::to_string(length)),
              std::string::npos)
        << anchored.out;
    // The export has no checkpoint past its end any more, but its last event is not a stop
    // covered by one: the script finds nothing it can prove wrong beyond that.
    auto script = VerifyExport(failed_);
    EXPECT_EQ(script.exit_code(), 0) << script.out;
}

TEST_F(TamperTest, RecomputedChainIsCaughtBySignaturesAndAnchors) {
    // Forge the waiting run's request: a different prompt, every hash after it recomputed,
    // the head rewritten. The chain alone cannot see it.
    const int64_t length = Length(waiting_);
    RecomputeChain(waiting_, [](std::vector<ledger::Event>& events) {
        for (auto& event : events) {
            if (event.type_name != "llm.request") continue;
            size_t at = event.data.find("\"prompt\":\"Look\"");
            ASSERT_NE(at, std::string::npos) << event.data;
            event.data.replace(at, 15, "\"prompt\":\"Delete everything\"");
            break;
        }
    });
    ExpectVerifyBroken(waiting_, length, "checkpoint mismatch");
    ExpectRefused(waiting_, {"approve", waiting_}, length, "checkpoint mismatch");
    ExpectRefused(waiting_, {"runs", "resume", waiting_}, length, "checkpoint mismatch");
    // Without its checkpoint rows, the stop is unsigned on every read path...
    ExecSql(db(), "DELETE FROM checkpoints WHERE run_id = ?", {waiting_});
    ExecSql(db(), "UPDATE runs SET checkpoint_seq = 0 WHERE run_id = ?", {waiting_});
    ExpectRefused(waiting_, {"approve", waiting_}, length, "unsigned stop");
    // ... and `audit verify` still finds the head the batch log signed.
    ExpectVerifyBroken(waiting_, length, "unsigned stop");
    // The anchors say the same, independently of the key.
    auto anchored = VerifyWithAnchors();
    EXPECT_EQ(anchored.exit_code(), 1);
    EXPECT_NE(anchored.out.find(waiting_ + ": BROKEN at seq"), std::string::npos) << anchored.out;
    // The export verifies as a chain and has no checkpoints: the script reports the ended
    // runs it can; a waiting run's forgery needs the signatures or anchors above.
    auto script = VerifyExport(waiting_);
    EXPECT_EQ(script.exit_code(), 0) << script.out;
}

TEST_F(TamperTest, RecomputedChainOfAnEndedRunFailsTheExportToo) {
    RecomputeChain(failed_, [](std::vector<ledger::Event>& events) {
        for (auto& event : events) {
            if (event.type_name != "run.failed") continue;
            event.data = R"({"code":"ok","error":"nothing happened"})";
        }
    });
    ExpectVerifyBroken(failed_, Length(failed_), "checkpoint mismatch");
    auto script = VerifyExport(failed_);
    EXPECT_EQ(script.exit_code(), 1);
    EXPECT_NE(script.out.find("checkpoint mismatch"), std::string::npos) << script.out;
    // Signatures forged with another key do not help the forger.
    ExecSql(db(), "UPDATE checkpoint_batches SET signature = ? WHERE batch_seq = 1",
            {std::string(128, 'a')});
    auto log = env_.Run({"audit", "verify", "--all"});
    EXPECT_EQ(log.exit_code(), 1);
    EXPECT_TRUE(log.out.starts_with("checkpoint batch log: BROKEN at batch 1: bad signature"))
        << log.out;
}

TEST_F(TamperTest, AnAuditorVerifiesWithThePublicKeyAlone) {
    auto pubkey = env_.Run({"audit", "pubkey"});
    ASSERT_EQ(pubkey.exit_code(), 0);
    EXPECT_TRUE(pubkey.out.starts_with("-----BEGIN PUBLIC KEY-----")) << pubkey.out;
    env_.Write("ledger.pub", pubkey.out);
    // No private key where the auditor works: verification needs only the public one.
    std::string key_file = db() + ".key";
    std::filesystem::rename(key_file, key_file + ".away");
    auto verify = env_.Run({"audit", "verify", "--all", "--pubkey", "ledger.pub"});
    EXPECT_EQ(verify.exit_code(), 0) << verify.out << verify.err;
    EXPECT_FALSE(std::filesystem::exists(key_file)) << "verification created a private key";
    // A different key's public half: every signature is someone else's.
    std::filesystem::rename(key_file + ".away", key_file);
    auto other =
        env_.RunProgram({"openssl", "genpkey", "-algorithm", "ed25519", "-out", "other.pem"});
    ASSERT_EQ(other.exit_code(), 0) << other.err;
    auto other_pub =
        env_.RunProgram({"openssl", "pkey", "-in", "other.pem", "-pubout", "-out", "other.pub"});
    ASSERT_EQ(other_pub.exit_code(), 0) << other_pub.err;
    auto stranger = env_.Run({"audit", "verify", failed_, "--pubkey", "other.pub"});
    EXPECT_EQ(stranger.exit_code(), 1);
    EXPECT_NE(stranger.out.find("unknown key"), std::string::npos) << stranger.out;
}

TEST_F(TamperTest, ACrashBeforeTheSignatureLeavesAnUnsignedStopThatResumeAllSigns) {
    // As if the process died between the stop's commit and its batch: no checkpoint.
    ExecSql(db(), "DELETE FROM checkpoints WHERE run_id = ?", {failed_});
    ExecSql(db(), "UPDATE runs SET checkpoint_seq = 0 WHERE run_id = ?", {failed_});
    ExecSql(db(), "DELETE FROM checkpoint_batches");
    ExecSql(db(), "DELETE FROM checkpoints");
    ExecSql(db(), "UPDATE runs SET checkpoint_seq = 0");
    ExpectVerifyBroken(failed_, Length(failed_), "unsigned stop");
    auto resume = env_.Run({"runs", "resume", "--all"});
    EXPECT_EQ(resume.exit_code(), 0) << resume.err;
    EXPECT_NE(resume.err.find("signed the stops of 2 runs that a crash left unsigned"),
              std::string::npos)
        << resume.err;
    auto verify = env_.Run({"audit", "verify", "--all"});
    EXPECT_EQ(verify.exit_code(), 0) << verify.out;
    auto batches = QueryColumn(db(), "SELECT recovered FROM checkpoint_batches");
    EXPECT_EQ(batches, std::vector<std::string>{"1"});
}

}  // namespace
}  // namespace strowger::testing
