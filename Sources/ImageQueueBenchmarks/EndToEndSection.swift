import Foundation
import ImageQueue
import RedisClient

/// No-op jobs end to end with ONE worker process, every guarantee on (leases, fencing tokens,
/// events): N flux jobs without enhancement are queued first, then the worker is spawned and
/// timed until the model's `completed_total` reaches N.
enum EndToEndSection {
    static func run(_ context: BenchContext) async throws {
        let options = context.options
        let (prefix, keys, client) = try sectionQueue("noop", context)
        try await withRunning([client]) {
            let jobs = options.jobs
            progress("noop: filling \(jobs) jobs, then one worker at --concurrency \(options.concurrency)")
            try await client.setConcurrency(options.concurrency, model: "flux")
            try await fill(client, model: "flux", count: jobs)
            let directory = scratchDirectory("noop")

            var concurrency = options.concurrency
            var measured: Measurement?
            for _ in 0..<2 {
                let worker = try WorkerProcess(binary: options.workerBinary!, redisURL: options.redisURL, prefix: prefix,
                                               concurrency: concurrency, outputDirectory: directory, placeholderSize: 8)
                do {
                    measured = try await drain(worker, jobs: jobs, keys: keys, context: context)
                    await worker.discard(outputDirectory: directory)
                    break
                } catch let error as BenchError {
                    let refusedAbove = worker.refusedConcurrencyMaximum
                    await worker.discard(outputDirectory: directory)
                    guard let maximum = refusedAbove, maximum < concurrency else { throw error }
                    context.report.note("the worker accepts --concurrency up to \(maximum): the no-op run used \(maximum) (asked for \(concurrency)).")
                    concurrency = maximum
                }
            }
            guard let measured else { throw BenchError("the worker did not start") }

            let failed = try await context.probe.metaCount(keys, "flux", "failed_total")
            let rate = Double(jobs) / measured.seconds
            let figure = "no-op jobs/s end to end, one worker process, --concurrency \(concurrency) (from spawn)"
            if let ceiling = context.ceilings.roundTrips {
                context.report.check(figure, value: grouped(rate) + "/s",
                                     reference: "≥ 50 % of \(context.ceilings.roundTripText) = \(grouped(ceiling / 2))/s (here \(fixed(rate / ceiling * 100, 0)) %)",
                                     met: rate >= ceiling / 2)
            } else {
                context.report.add(Row(figure: figure, value: grouped(rate) + "/s", reference: "no ceiling measured"))
            }
            context.report.add(Row(figure: "no-op jobs/s, steady (from the first completion)", value: grouped(measured.steadyRate) + "/s",
                                   reference: "start-up \(fixed(measured.startup, 2)) s"))
            context.report.add(Row(figure: "worker CPU µs/job (utime+stime, whole life incl. start-up)",
                                   value: fixed(measured.workerCPU / Double(jobs) * 1e6, 1) + " µs"))
            if let redisCPU = measured.redisCPU {
                context.report.add(Row(figure: "Redis CPU µs/job (no-op run)", value: fixed(redisCPU / Double(jobs) * 1e6, 1) + " µs"))
            }
            context.report.add(Row(figure: "worker peak RSS (VmHWM) in the no-op run", value: mebibytes(measured.peakKiB)))
            context.report.add(Row(figure: "Sidekiq's rate in the same run", value: "see the peers table (ops/bench/peers.sh)",
                                   reference: "target: ≥ 2× sidekiq -c1"))
            if failed > 0 { context.report.note("no-op run: \(failed) jobs failed (they are not counted as done).") }
            context.report.note("no-op run: \(jobs) jobs queued before the worker starts; placeholder backend, 8×8 PNG written to tmpfs; "
                                + "leases, fencing tokens and status events on. The model's limit was \(options.concurrency).")
            try await context.probe.deleteKeys(prefix: prefix, flush: false)
        }
    }

    struct Measurement {
        var seconds: Double
        var startup: Double
        var steadyRate: Double
        var workerCPU: Double
        var redisCPU: Double?
        var peakKiB: Int
    }

    /// Times spawn → `completed_total` = jobs, polling every 5 ms.
    static func drain(_ worker: WorkerProcess, jobs: Int, keys: QueueKeys, context: BenchContext) async throws -> Measurement {
        let clock = ContinuousClock()
        let started = clock.now
        let redisBefore = context.redisCPU()
        var firstProgress: (time: ContinuousClock.Instant, done: Int)?
        var peak = 0
        let deadline = started + .seconds(max(300, jobs / 50))
        while true {
            let done = try await context.probe.metaCount(keys, "flux", "completed_total")
            let now = clock.now
            if firstProgress == nil, done > 0 { firstProgress = (now, done) }
            peak = max(peak, ProcFS.statusKiB(worker.pid, "VmRSS") ?? 0)
            if done >= jobs {
                let workerCPU = ProcFS.cpuSeconds(worker.pid) ?? .nan
                let redisCPU = context.redisCPU().map { $0 - (redisBefore ?? 0) }
                peak = max(peak, ProcFS.statusKiB(worker.pid, "VmHWM") ?? 0)
                let seconds = (now - started).seconds
                let first = firstProgress ?? (now, done)
                let steadySeconds = (now - first.time).seconds
                return Measurement(seconds: seconds, startup: (first.time - started).seconds,
                                   steadyRate: steadySeconds > 0 ? Double(jobs - first.done) / steadySeconds : .nan,
                                   workerCPU: workerCPU, redisCPU: redisCPU, peakKiB: peak)
            }
            if !worker.isRunning { throw worker.exitedError() }
            if now > deadline { throw BenchError("timed out with \(done) of \(jobs) jobs done") }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
