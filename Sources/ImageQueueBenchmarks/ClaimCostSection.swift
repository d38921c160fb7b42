import ImageQueue
import RedisClient

/// The cost of one claim with 1 000 jobs pending and with 1 000 000: the server's µs per claim
/// script call (`INFO commandstats`, evalsha) and the client's claims/s. Claims are made in
/// rounds of 500 without completing anything (the model's limit is set very high); before each
/// round the queue is topped up to pending + 500, outside the measurement, so every claim sees
/// between `pending` and `pending` + 500 jobs.
enum ClaimCostSection {
    struct Cost {
        var serverMicros: Double
        var clientRate: Double
    }

    static func run(_ context: BenchContext) async throws {
        // 1 000 pending is measured before and after the large queue, so the ratio does not
        // ride on which ran first (a warmer or busier Redis).
        let smallBefore = try await measure(context, pending: 1_000)
        let large = try await measure(context, pending: context.options.largePending)
        let smallAfter = try await measure(context, pending: 1_000)
        let small = Cost(serverMicros: (smallBefore.serverMicros + smallAfter.serverMicros) / 2,
                         clientRate: (smallBefore.clientRate + smallAfter.clientRate) / 2)
        let claims = context.options.claims
        let largeText = grouped(Double(context.options.largePending))
        context.report.add(Row(figure: "claim, 1,000 pending: server µs per claim call (evalsha usec_per_call; mean of a run before and one after the large queue)",
                               value: fixed(small.serverMicros, 2) + " µs",
                               reference: "before \(fixed(smallBefore.serverMicros, 2)) µs, after \(fixed(smallAfter.serverMicros, 2)) µs; "
                                   + "\(grouped(small.clientRate)) claims/s client-side, one at a time"))
        context.report.add(Row(figure: "claim, \(largeText) pending: server µs per claim call",
                               value: fixed(large.serverMicros, 2) + " µs", reference: "\(grouped(large.clientRate)) claims/s client-side, one at a time"))
        let ratio = large.serverMicros / small.serverMicros
        context.report.check("claim cost ratio, \(largeText) / 1,000 pending (server µs)",
                             value: fixed(ratio, 3), reference: "≤ 1.2", met: ratio <= 1.2)
        context.report.add(Row(figure: "claim time ratio, \(largeText) / 1,000 pending (client-side, 1 / claims/s)",
                               value: fixed(small.clientRate / large.clientRate, 2)))
        context.report.note("claim cost: \(claims) claims per size, no completions, the model's limit at 1,000,000,000; "
                            + "the server figure is evalsha µs/call from INFO commandstats deltas around each round of 500 claims.")
    }

    static func measure(_ context: BenchContext, pending: Int) async throws -> Cost {
        let (prefix, keys, client) = try sectionQueue("claim\(pending)", context)
        var configuration = QueueConfiguration()
        configuration.keyPrefix = prefix
        let queue = WorkerQueue(redis: context.redisConfiguration, configuration: configuration, workerID: "bench-claim")
        return try await withRunning([client, queue]) {
            let round = 500
            let claims = context.options.claims
            progress("claim: filling \(pending + round) jobs")
            let clock = ContinuousClock()
            let fillTime = try await clock.measure {
                try await client.setConcurrency(1_000_000_000, model: "flux")
                try await fill(client, model: "flux", count: pending + round, batch: 1000, parallel: 8)
            }
            if pending >= 100_000 {
                context.report.note("claim: filled \(grouped(Double(pending + round))) jobs in \(fixed(fillTime.seconds, 1)) s "
                                    + "(\(grouped(Double(pending + round) / fillTime.seconds)) jobs/s, batches of 1000, 8 in flight).")
            }
            // One claim first: the script is loaded and the connection open before anything is counted.
            guard case .claimed = try await queue.claim(model: "flux", lease: .seconds(3600)) else { throw BenchError("nothing to claim") }

            var serverCalls = 0, serverMicros = 0
            var clientSeconds = 0.0
            progress("claim: \(claims) claims with \(pending) pending")
            for _ in 0..<(claims / round) {
                let queued = Int(try await context.probe.redis.send("ZCARD", keys.pending("flux")).int ?? 0)
                if queued < pending + round { try await fill(client, model: "flux", count: pending + round - queued, batch: 1000, parallel: 1) }
                let before = try await context.probe.commandStats()["evalsha"] ?? (0, 0)
                let elapsed = try await clock.measure {
                    for _ in 0..<round {
                        guard case .claimed = try await queue.claim(model: "flux", lease: .seconds(3600)) else {
                            throw BenchError("a claim found nothing with \(pending) pending")
                        }
                    }
                }
                let after = try await context.probe.commandStats()["evalsha"] ?? (0, 0)
                serverCalls += after.calls - before.calls
                serverMicros += after.usec - before.usec
                clientSeconds += elapsed.seconds
            }
            let measured = (claims / round) * round
            if serverCalls != measured {
                context.report.note("claim: Redis counted \(serverCalls) script calls for \(measured) claims (another client was using the server?)")
            }
            progress("claim: deleting the keys")
            try await context.probe.deleteKeys(prefix: prefix, flush: context.options.flush)
            return Cost(serverMicros: Double(serverMicros) / Double(max(serverCalls, 1)), clientRate: Double(measured) / clientSeconds)
        }
    }
}
