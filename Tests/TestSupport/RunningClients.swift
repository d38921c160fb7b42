import RedisClient
import Testing

/// Runs the Redis clients a test makes (connections, subscribers, queue clients) while the
/// test runs, as child tasks of the test's own scope, and stops them when it ends: the
/// clients live inside a `run()` in tests too. Give it to a suite (`@Suite(.runsClients)`),
/// and make clients with `runInTest(_:)`.
public struct RunsClients: TestTrait, SuiteTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(for test: Test, testCase: Test.Case?,
                             performing function: @Sendable () async throws -> Void) async throws {
        guard testCase != nil else { return try await function() }  // the suite itself: its tests get their own
        let clients = TestClients()
        try await TestClients.$current.withValue(clients) {
            try await withRunning([clients.children]) { try await function() }
        }
    }
}

extension Trait where Self == RunsClients {
    /// Runs the clients each test makes with `runInTest(_:)` while the test runs.
    public static var runsClients: Self { RunsClients() }
}

/// The clients of the test that is running.
public final class TestClients: Sendable {
    @TaskLocal public static var current: TestClients?
    let children = ChildClients()
}

/// Starts `client` in the current test's scope (`.runsClients`) and returns it.
public func runInTest<Client: ClosableService>(_ client: Client, file: StaticString = #fileID, line: UInt = #line) -> Client {
    guard let scope = TestClients.current else {
        preconditionFailure("runInTest(_:) outside a test with the .runsClients trait (\(file):\(line)): add it to the suite")
    }
    scope.children.start(client)
    return client
}
