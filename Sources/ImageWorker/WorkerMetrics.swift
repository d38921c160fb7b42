import ImageQueue
import Metrics
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The worker's metrics through swift-metrics (Prometheus when the CLI bootstraps it):
/// jobs claimed, completed, failed, retried per model; queue wait, enhancement,
/// generation and total time; jobs in flight; time since each claim loop last ticked.
public final class WorkerMetrics: Sendable {
    private let inFlightCount = Atomic<Int>(0)
    private let lastTicks = Mutex<[String: ContinuousClock.Instant]>([:])

    /// Creates the metrics.
    public init() {}

    func claimed(_ job: ClaimedJob) {
        Counter(label: "imagequeue_worker_jobs_claimed_total", dimensions: [("model", job.model)]).increment()
        let waited = max(0, unixTimeMilliseconds() - job.enqueuedAt)
        Timer(label: "imagequeue_worker_queue_wait_seconds", dimensions: [("model", job.model)])
            .recordMilliseconds(waited)
    }

    func enhanced(_ job: ClaimedJob, duration: Duration, fellBack: Bool) {
        Timer(label: "imagequeue_worker_enhancement_seconds", dimensions: [("model", job.model)]).record(duration: duration)
        if fellBack {
            Counter(label: "imagequeue_worker_enhancement_fallbacks_total", dimensions: [("model", job.model)]).increment()
        }
    }

    func generated(_ job: ClaimedJob, duration: Duration) {
        Timer(label: "imagequeue_worker_generation_seconds", dimensions: [("model", job.model)]).record(duration: duration)
    }

    func retried(_ job: ClaimedJob) {
        Counter(label: "imagequeue_worker_jobs_retried_total", dimensions: [("model", job.model)]).increment()
    }

    func finished(_ job: ClaimedJob, outcome: JobProcessor.Outcome, total: Duration) {
        let label: String
        switch outcome {
        case .completed: label = "imagequeue_worker_jobs_completed_total"
        case .failed: label = "imagequeue_worker_jobs_failed_total"
        case .cancelled: label = "imagequeue_worker_jobs_cancelled_total"
        case .requeued, .released, .abandoned: label = "imagequeue_worker_jobs_handed_back_total"
        }
        Counter(label: label, dimensions: [("model", job.model)]).increment()
        Timer(label: "imagequeue_worker_job_seconds", dimensions: [("model", job.model)]).record(duration: total)
    }

    /// One settled webhook attempt: `delivered`, `retry` (failed, due again later) or
    /// `gave_up` (failed for good: refused address, or the retry window passed).
    func webhookAttempt(model: String, outcome: String) {
        Counter(label: "imagequeue_worker_webhook_deliveries_total", dimensions: [("model", model), ("outcome", outcome)]).increment()
    }

    func inFlight(_ change: Int) {
        let value = inFlightCount.add(change, ordering: .relaxed).newValue
        // Made when recorded, not when the worker is built: metrics may be bootstrapped later.
        Gauge(label: "imagequeue_worker_jobs_in_flight").record(value)
    }

    /// Records that a model's claim loop is alive.
    func tick(model: String) {
        lastTicks.withLock { $0[model] = .now }
    }

    /// Updates the "seconds since the claim loop ticked" gauges; call before exporting.
    public func refreshLoopAges() {
        let now = ContinuousClock.now
        for (model, tick) in lastTicks.withLock({ $0 }) {
            let (seconds, attoseconds) = (now - tick).components
            Gauge(label: "imagequeue_worker_claim_loop_idle_seconds", dimensions: [("model", model)])
                .record(Double(seconds) + Double(attoseconds) / 1e18)
        }
    }

}

extension Timer {
    func record(duration: Duration) {
        let (seconds, attoseconds) = duration.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
