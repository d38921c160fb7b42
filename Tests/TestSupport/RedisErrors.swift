import RedisClient
import Testing

/// Runs `body`, which must fail with a `RedisError`; returns that error (nil after recording
/// an issue when it succeeded or threw something else).
public func redisError(sourceLocation: SourceLocation = #_sourceLocation,
                       _ body: () async throws -> Void) async -> RedisError? {
    do {
        try await body()
        Issue.record("expected a RedisError, but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as RedisError {
        return error
    } catch {
        Issue.record("expected a RedisError, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
