// The command: provider with real commands in the real sandbox.
#include "providers/command/command_provider.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <cstdlib>
#include <filesystem>

#include "core/log.hpp"
#include "core/strings.hpp"
#include "testing/test_util.hpp"

namespace strowger::providers {
namespace {

namespace fs = std::filesystem;
using testing::RunSync;

Message Msg(Role role, std::string content) {
    Message message;
    message.role = role;
    message.content = std::move(content);
    return message;
}

class CommandProviderTest : public ::testing::Test {
  protected:
    void SetUp() override {
        auto sandbox = tools::sandbox::CreateBubblewrapSandbox(io_.get_executor());
        ASSERT_TRUE(sandbox) << sandbox.error().ToString();
        sandbox_ = *sandbox;
        CommandProviderOptions options;
        options.temp_root = temp_.path();
        provider_ = std::make_shared<CommandProvider>(sandbox_, options);
    }

    Result<Completion> Complete(std::string command, std::vector<Message> messages,
                                Deadline deadline = Deadline::After(std::chrono::seconds(30))) {
        CompletionRequest request;
        request.model = std::move(command);
        request.messages = std::move(messages);
        request.run_id = "run-7";
        request.node = "review";
        request.agent = "critic";
        request.attempt = 2;
        return RunSync(provider_->Complete(std::move(request), deadline), std::chrono::seconds(60));
    }

    asio::io_context io_;
    testing::TempDir temp_;
    std::shared_ptr<tools::sandbox::Sandbox> sandbox_;
    std::shared_ptr<CommandProvider> provider_;
};

TEST_F(CommandProviderTest, CatEchoesSystemPromptThenLastUserMessage) {
    auto result = Complete(
        "cat", {Msg(Role::kSystem, "You are terse."), Msg(Role::kUser, "first question"),
                Msg(Role::kAssistant, "first answer"), Msg(Role::kUser, "second question")});
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "You are terse.\n\nsecond question");
    EXPECT_EQ(result->finish_reason, "stop");
    EXPECT_EQ(result->model, "cat");
    EXPECT_EQ(result->usage.input_tokens, (32 + 3) / 4);
    EXPECT_EQ(result->usage.output_tokens, (32 + 3) / 4);
    EXPECT_TRUE(result->tool_calls.empty());
}

TEST_F(CommandProviderTest, OneTrailingNewlineIsTrimmed) {
    auto result = Complete("cat; echo; echo", {Msg(Role::kUser, "hi")});
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "hi\n");
}

TEST_F(CommandProviderTest, FailingCommandIsUnavailableWithStderrTail) {
    auto result =
        Complete("echo partial; echo 'model exploded' >&2; exit 3", {Msg(Role::kUser, "hi")});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kUnavailable);
    EXPECT_EQ(result.error().details().exit_code, 3);
    EXPECT_EQ(result.error().message(),
              "command: `echo partial; echo 'model exploded' >&2; exit 3` exited with 3: model "
              "exploded");
    EXPECT_TRUE(IsRetryable(result.error()));
}

TEST_F(CommandProviderTest, DeadlineKillsTheCommand) {
    auto started = std::chrono::steady_clock::now();
    auto result = Complete("sleep 30", {Msg(Role::kUser, "hi")},
                           Deadline::After(std::chrono::milliseconds(300)));
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code(), ErrorCode::kDeadlineExceeded);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
}

TEST_F(CommandProviderTest, RunsInAFreshWorkspaceThatIsRemovedAfterwards) {
    auto result = Complete(
        "pwd; test \"$HOME\" = \"$(pwd)\" && echo home-is-workspace; "
        "echo \"$STROWGER_RUN $STROWGER_NODE $STROWGER_AGENT $STROWGER_ATTEMPT\"; "
        "touch scratch",
        {Msg(Role::kUser, "hi")});
    ASSERT_TRUE(result) << result.error().ToString();
    auto lines = Split(result->content, '\n');
    ASSERT_EQ(lines.size(), 3u) << result->content;
    EXPECT_EQ(fs::path(lines[0]).parent_path(), temp_.path());
    EXPECT_EQ(lines[1], "home-is-workspace");
    EXPECT_EQ(lines[2], "run-7 review critic 2");
    EXPECT_FALSE(fs::exists(lines[0]));
    EXPECT_TRUE(fs::is_empty(temp_.path()));
}

TEST_F(CommandProviderTest, OnlyListedVariablesPassThrough) {
    setenv("OPENAI_API_KEY", "sk-test-passed", 1);
    setenv("STROWGER_COMMAND_TEST_SECRET", "not-passed", 1);
    auto result = Complete("echo \"[$OPENAI_API_KEY][$STROWGER_COMMAND_TEST_SECRET]\"",
                           {Msg(Role::kUser, "hi")});
    unsetenv("OPENAI_API_KEY");
    unsetenv("STROWGER_COMMAND_TEST_SECRET");
    ASSERT_TRUE(result) << result.error().ToString();
    EXPECT_EQ(result->content, "[sk-test-passed][]");
}

TEST_F(CommandProviderTest, RegistryResolvesCommandModels) {
    ProviderRegistry registry(io_.get_executor());
    RegisterCommandProvider(registry, sandbox_);
    auto resolved = registry.Resolve("command:llm -m gpt-4o-mini", "/workflows");
    ASSERT_TRUE(resolved) << resolved.error().ToString();
    EXPECT_EQ(resolved->provider_name, "command");
    EXPECT_EQ(resolved->model, "llm -m gpt-4o-mini");
    EXPECT_EQ(resolved->provider->name(), "command");
    auto empty = registry.Resolve("command:  ", "");
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().code(), ErrorCode::kInvalidArgument);
}

TEST(CommandPromptTest, WithoutSystemOrUserMessages) {
    EXPECT_EQ(CommandPrompt({Msg(Role::kUser, "only")}), "only");
    EXPECT_EQ(
        CommandPrompt({Msg(Role::kSystem, "a"), Msg(Role::kSystem, "b"), Msg(Role::kUser, "q")}),
        "a\n\nb\n\nq");
    EXPECT_EQ(CommandPrompt({Msg(Role::kUser, "q"), Msg(Role::kTool, "tool output")}), "q");
    EXPECT_EQ(CommandPrompt({Msg(Role::kTool, "tool output")}), "tool output");
    EXPECT_EQ(CommandPrompt({}), "");
}

TEST_F(CommandProviderTest, AKeyInStderrIsRedactedBeforeTheTailIsCut) {
    // The last 2,000 bytes of stderr start 21 bytes into the key: cut first, its rest was
    // left for no redaction to find.
    const std::string key = "cmd-secret-0123456789abcdefghij";
    RegisterSecret(key);
    // (The command line names the key in pieces: the message quotes the command line too.)
    auto result = Complete(
        "printf '%s%s%s' cmd-secret-0123456789 abcde fghij >&2; head -c 1990 /dev/zero | "
        "tr '\\0' y >&2; echo >&2; exit 3",
        {Msg(Role::kUser, "go")});
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().details().exit_code, 3);
    EXPECT_EQ(result.error().message().find(key.substr(21)), std::string::npos)
        << result.error().message().substr(0, 120);
    EXPECT_NE(result.error().message().find("yyyy"), std::string::npos);
}

}  // namespace
}  // namespace strowger::providers
