import Foundation
import RedisClient

/// What one client doing one thing at a time can get from this Redis on this machine, measured
/// by redis-benchmark in the same run: the yardstick every other figure is printed next to.
struct Ceilings: Sendable {
    /// `PING` round trips per second with one connection (`-c 1`), PING_MBULK (a RESP array like ours).
    var roundTrips: Double?
    /// `EVAL "return 1" 0` per second with one connection.
    var eval: Double?

    var roundTripText: String {
        roundTrips.map { "`-c 1` round trips \(grouped($0))/s" } ?? "`-c 1` round trips not measured"
    }
    var evalText: String {
        eval.map { "`-c 1` EVAL \(grouped($0))/s" } ?? "`-c 1` EVAL not measured"
    }

    static func measure(_ endpoint: RedisEndpoint, probe: RedisProbe, report: Report) async -> Ceilings {
        var ceilings = Ceilings()
        progress("ceilings: redis-benchmark -c 1 -n 50000")
        guard let tool = findExecutable("redis-benchmark") else {
            report.add(Row(figure: "redis-benchmark ceilings", value: "skipped", reference: "redis-benchmark is not installed (apt-get install redis-tools)", verdict: .skipped))
            return ceilings
        }
        var target: [String]
        switch endpoint.address {
        case .tcp(let host, let port): target = ["-h", host, "-p", String(port)]
        case .unix(let path): target = ["-s", path]
        }
        if endpoint.password != nil {
            // redis-benchmark takes a password only on its command line, where every user of the
            // machine can read it: not done.
            report.add(Row(figure: "redis-benchmark ceilings", value: "skipped", reference: "the URL has a password, which redis-benchmark would show in the process list", verdict: .skipped))
            return ceilings
        }
        if endpoint.database != 0 { target += ["--dbnum", String(endpoint.database)] }
        let common = target + ["-c", "1", "-n", "50000", "--csv"]
        ceilings.roundTrips = await run(tool, common + ["-t", "ping"], row: "PING_MBULK")
        ceilings.eval = await run(tool, common + ["eval", "return 1", "0"], row: nil)
        report.add(Row(figure: "ceiling: PING round trips/s, one connection (`redis-benchmark -c 1 -t ping`, PING_MBULK)",
                       value: ceilings.roundTrips.map { grouped($0) + "/s" } ?? "failed", reference: "the round-trip ceiling"))
        report.add(Row(figure: "ceiling: `EVAL \"return 1\" 0`/s, one connection (`redis-benchmark -c 1`)",
                       value: ceilings.eval.map { grouped($0) + "/s" } ?? "failed", reference: "the script-call ceiling"))

        // The same round trip through this project's client, for scale: what our connection adds.
        let count = 20_000
        let clock = ContinuousClock()
        do {
            let elapsed = try await clock.measure {
                for _ in 0..<count { try await probe.redis.send("PING") }
            }
            let rate = Double(count) / elapsed.seconds
            report.add(Row(figure: "PING round trips/s through our RedisConnection (one caller, awaited)", value: grouped(rate) + "/s",
                           reference: ceilings.roundTrips.map { fixed(rate / $0 * 100, 0) + " % of " + ceilings.roundTripText } ?? ""))
        } catch {
            report.note("PING loop failed: \(error)")
        }
        return ceilings
    }

    /// Runs redis-benchmark with --csv and returns the requests per second of `row` (or the last row).
    private static func run(_ tool: String, _ arguments: [String], row: String?) async -> Double? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        while process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
        guard process.terminationStatus == 0 else { return nil }
        var found: Double?
        for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let cells = line.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            guard cells.count > 1, cells[0] != "test", let rate = Double(cells[1]) else { continue }
            if row == nil || cells[0] == row { found = rate }
        }
        return found
    }
}

/// The first executable named `name` on PATH.
func findExecutable(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}
