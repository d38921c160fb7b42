/// Checks `condition` every `interval` until it holds or `limit` passes; returns whether it
/// held. A bounded wait for a state change, never a timing assertion: the limit only keeps a
/// broken setup from hanging the suite, so it is generous enough for a loaded 2-core machine
/// running the whole suite at once.
public func eventually(within limit: Duration = .seconds(60), every interval: Duration = .milliseconds(20),
                       _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + limit
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: interval)
    }
}
