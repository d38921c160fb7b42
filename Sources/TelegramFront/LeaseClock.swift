import Synchronization

/// This process's own view of how long its lease is certainly still valid: the time of the
/// last successful renewal's request plus the lease, less a safety margin for clock drift.
/// Checked before every step that must happen only once (sending an image).
final class LeaseClock: Sendable {
    private let validUntil: Mutex<ContinuousClock.Instant>
    private let duration: Duration

    /// Starts the clock for a lease taken by a request sent at `start`.
    init(start: ContinuousClock.Instant, duration: Duration) {
        self.duration = duration
        validUntil = Mutex(start + duration - duration / 10)
    }

    /// Records a renewal whose request was sent at `start`.
    func renewed(at start: ContinuousClock.Instant) {
        validUntil.withLock { $0 = start + duration - duration / 10 }
    }

    /// Whether the lease is certainly still held.
    var isValid: Bool { validUntil.withLock { ContinuousClock.now < $0 } }
}
