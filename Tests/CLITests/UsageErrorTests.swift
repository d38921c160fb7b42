import Foundation
import Testing
import TestSupport

/// One wrong invocation and what makes it wrong.
struct UsageCase: Sendable, CustomTestStringConvertible {
    let name: String
    let arguments: [String]
    var environment: [String: String] = [:]
    /// Replaces the test server's URL in `--redis`.
    var redisURL: String?

    var testDescription: String { name }

    static let all: [UsageCase] = [
        UsageCase(name: "unknown flag", arguments: ["enqueue", "--model", "flux", "--user", "alice", "--colour", "red", "a fox"]),
        UsageCase(name: "missing --model", arguments: ["enqueue", "--user", "alice", "a fox"]),
        UsageCase(name: "missing prompt", arguments: ["enqueue", "--model", "flux", "--user", "alice"]),
        UsageCase(name: "unknown model", arguments: ["enqueue", "--model", "dalle", "--user", "alice", "a fox"]),
        UsageCase(name: "empty prompt", arguments: ["enqueue", "--model", "flux", "--user", "alice", ""]),
        UsageCase(name: "--n 0", arguments: ["enqueue", "--model", "flux", "--user", "alice", "--n", "0", "a fox"]),
        UsageCase(name: "--n 5", arguments: ["enqueue", "--model", "flux", "--user", "alice", "--n", "5", "a fox"]),
        UsageCase(name: "--n not a number", arguments: ["enqueue", "--model", "flux", "--user", "alice", "--n", "x", "a fox"]),
        UsageCase(name: "prompt over IMAGEQUEUE_MAX_PROMPT_LENGTH",
                  arguments: ["enqueue", "--model", "flux", "--user", "alice", "a fox in snow"],
                  environment: ["IMAGEQUEUE_MAX_PROMPT_LENGTH": "10"]),
        UsageCase(name: "BEL in prompt", arguments: ["enqueue", "--model", "flux", "--user", "alice", "a red\u{07} fox"]),
        UsageCase(name: "ESC in prompt", arguments: ["enqueue", "--model", "flux", "--user", "alice", "\u{1B}[31ma red fox"]),
        UsageCase(name: "bad --redis URL", arguments: ["enqueue", "--model", "flux", "--user", "alice", "a fox"],
                  redisURL: "http://x"),
        UsageCase(name: "bad IMAGEQUEUE_RATE_LIMIT", arguments: ["enqueue", "--model", "flux", "--user", "alice", "a fox"],
                  environment: ["IMAGEQUEUE_RATE_LIMIT": "lots"]),
        // Found in the fuzzing work (docs/FUZZING.md): these windows trapped converting to ms.
        UsageCase(name: "infinite IMAGEQUEUE_RATE_LIMIT window", arguments: ["enqueue", "--model", "flux", "--user", "alice", "a fox"],
                  environment: ["IMAGEQUEUE_RATE_LIMIT": "10/inf"]),
        UsageCase(name: "IMAGEQUEUE_RATE_LIMIT window past Int64 milliseconds",
                  arguments: ["enqueue", "--model", "flux", "--user", "alice", "a fox"],
                  environment: ["IMAGEQUEUE_RATE_LIMIT": "10/1e300"]),
        UsageCase(name: "bad IMAGEQUEUE_MAX_PROMPT_LENGTH", arguments: ["enqueue", "--model", "flux", "--user", "alice", "a fox"],
                  environment: ["IMAGEQUEUE_MAX_PROMPT_LENGTH": "long"]),
        UsageCase(name: "bad IMAGEQUEUE_REDIS_WAIT_REPLICAS", arguments: ["enqueue", "--model", "flux", "--user", "alice", "a fox"],
                  environment: ["IMAGEQUEUE_REDIS_WAIT_REPLICAS": "all"]),
        UsageCase(name: "bad IMAGEQUEUE_REDIS_WAIT_TIMEOUT", arguments: ["queues"],
                  environment: ["IMAGEQUEUE_REDIS_WAIT_TIMEOUT": "0"]),
        UsageCase(name: "unknown subcommand", arguments: ["enqueu", "--model", "flux", "--user", "alice", "a fox"]),
        UsageCase(name: "malformed job id", arguments: ["status", "not a job id", "--json"]),
        UsageCase(name: "concurrency of an unknown model", arguments: ["concurrency", "--model", "dalle"]),
        UsageCase(name: "concurrency not a number", arguments: ["concurrency", "--model", "flux", "many"]),
        UsageCase(name: "dead list of an unknown model", arguments: ["dead", "list", "--model", "dalle", "--json"]),
        UsageCase(name: "dead list without --model", arguments: ["dead", "list"]),
    ]
}

@Suite("usage and validation errors")
struct UsageErrorTests {
    @Test("exit 2 with one line on stderr, nothing on stdout, nothing queued", arguments: UsageCase.all)
    func usageError(_ usage: UsageCase) async throws {
        let cli = try CLI()
        let result = try await cli.runExactly(usage.arguments + ["--redis", usage.redisURL ?? cli.redisURL, "--prefix", cli.prefix],
                                        environment: usage.environment)
        expectOneLineFailure(result, status: 2)
        let queues = try await cli.queues()
        #expect(queues["flux"]?["pending"] == .integer(0))
        #expect(queues["flux"]?["concurrency"] == .integer(1))
    }
}
