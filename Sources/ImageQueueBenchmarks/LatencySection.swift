import Foundation
import Histogram
import ImageQueue
import RedisClient

/// Enqueue → claim latency at idle: one worker (concurrency 1) waits on its doorbell; the bench
/// enqueues one job, notes when the job's claim event (`enhancing` or `generating`) arrives on
/// the model's events channel, waits for `completed` and for the worker to block again, and
/// repeats. The figure includes pub/sub delivery back to the bench.
enum LatencySection {
    /// One message from the events channel and when it arrived.
    struct Arrival: Sendable {
        var id: String
        var status: JobStatus
        var time: ContinuousClock.Instant
    }

    static func run(_ context: BenchContext) async throws {
        let options = context.options
        let (prefix, keys, client) = try sectionQueue("latency", context)
        let subscriber = RedisSubscriber(configuration: context.redisConfiguration)
        try await withRunning([client, subscriber]) {
            try await client.setConcurrency(1, model: "flux")
            let directory = scratchDirectory("latency")
            let worker = try WorkerProcess(binary: options.workerBinary!, redisURL: options.redisURL, prefix: prefix,
                                           concurrency: 1, outputDirectory: directory, placeholderSize: 8)
            do {
                progress("latency: waiting for the worker to block on its doorbell")
                let idleBlocked = try await waitUntilBlocked(worker, probe: context.probe, atLeast: 1, timeout: .seconds(60))

                // A listener task stamps each event as it arrives; the loop below reads them later.
                let messages = try await subscriber.subscribe([keys.events("flux")])
                try await withThrowingTaskGroup(of: Void.self) { group in
                    let (arrivals, sink) = AsyncStream<Arrival>.makeStream(bufferingPolicy: .unbounded)
                    group.addTask {
                        for await message in messages {
                            guard case .message(_, let payload) = message else { continue }
                            let time = ContinuousClock.now
                            if let event = try? StatusEvent(json: payload) { sink.yield(Arrival(id: event.id, status: event.status, time: time)) }
                        }
                        sink.finish()
                    }
                    var events = arrivals.makeAsyncIterator()

                    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                    let samples = options.latencySamples
                    progress("latency: \(samples) samples")
                    let started = ContinuousClock.now
                    for index in 0..<samples {
                        let sent = ContinuousClock.now
                        let job = try await client.enqueue(JobRequest(model: "flux", prompt: "latency \(index)", user: "bench", enhance: false))
                        var claimed: ContinuousClock.Instant?
                        while true {
                            guard let arrival = await events.next() else { throw BenchError("the events subscription ended") }
                            guard arrival.id == job.id else { continue }
                            if claimed == nil, arrival.status == .enhancing || arrival.status == .generating { claimed = arrival.time }
                            if arrival.status == .failed { throw BenchError("job \(job.id) failed") }
                            if arrival.status == .completed { break }
                        }
                        let micros = max(1, Int64(((claimed ?? sent) - sent).seconds * 1e6))
                        _ = histogram.record(UInt64(micros))
                        // At idle: the next job goes in only when the worker waits on its doorbell again.
                        _ = try await waitUntilBlocked(worker, probe: context.probe, atLeast: idleBlocked, timeout: .seconds(10))
                        if !worker.isRunning { throw worker.exitedError() }
                    }
                    let elapsed = (ContinuousClock.now - started).seconds
                    func ms(_ micros: UInt64) -> String { fixed(Double(micros) / 1000, 3) + " ms" }
                    let p99 = histogram.valueAtPercentile(99.0)
                    context.report.add(Row(figure: "enqueue→claim p50 at idle (\(samples) samples)", value: ms(histogram.valueAtPercentile(50.0))))
                    context.report.check("enqueue→claim p99 at idle", value: ms(p99), reference: "< 1 ms", met: p99 < 1000)
                    context.report.add(Row(figure: "enqueue→claim p99.9 at idle", value: ms(histogram.valueAtPercentile(99.9))))
                    context.report.add(Row(figure: "enqueue→claim max at idle", value: ms(histogram.max)))
                    context.report.note("enqueue→claim latency: from just before the enqueue call to the arrival of the job's claim event "
                                        + "on the model's events channel; it includes the enqueue round trip, the claim script (which the idle "
                                        + "worker sent behind its BLPOP, so Redis runs it as the doorbell rings) and pub/sub delivery back to "
                                        + "the bench. One job at a time, each sent once the worker "
                                        + "was blocked on its doorbell again (\(fixed(elapsed, 1)) s for all samples).")
                    group.cancelAll()  // the listener
                }
            } catch {
                await worker.discard(outputDirectory: directory)
                throw error
            }
            await worker.discard(outputDirectory: directory)
            try await context.probe.deleteKeys(prefix: prefix, flush: false)
        }
    }

    /// Waits until Redis counts at least `atLeast` blocked clients (the idle worker's BLPOP);
    /// returns the count seen.
    static func waitUntilBlocked(_ worker: WorkerProcess, probe: RedisProbe, atLeast: Int, timeout: Duration) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        while true {
            let blocked = Int(try await probe.info("clients")["blocked_clients"] ?? "") ?? 0
            if blocked >= atLeast { return blocked }
            if !worker.isRunning { throw worker.exitedError() }
            if ContinuousClock.now > deadline { throw BenchError("the worker did not go idle within \(timeout)") }
            try await Task.sleep(for: .microseconds(200))
        }
    }
}
