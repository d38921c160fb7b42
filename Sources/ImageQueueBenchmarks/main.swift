// imagequeue-bench: prints throughput figures for the queue core. Not a test: it asserts
// nothing, it measures. Run it in release mode against a Redis nobody else is using:
//
//   swift run -c release imagequeue-bench --redis redis://127.0.0.1:6390 --jobs 20000
//
// With `--worker .build/release/imagequeue` it also runs one worker process (placeholder
// backend, 8×8 images, no enhancement) over pre-filled jobs and reports end-to-end jobs/s
// and the worker's resident memory idle and busy.
//
// Every key it writes is under a fresh prefix and deleted at the end.

import Foundation
import ImageQueue
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var redisURL = "redis://127.0.0.1:6379"
    var jobs = 20_000
    var batchSize = 100
    var workerBinary: String?

    init(_ arguments: [String]) {
        var iterator = arguments.makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--redis": redisURL = iterator.next() ?? redisURL
            case "--jobs": jobs = iterator.next().flatMap(Int.init) ?? jobs
            case "--batch": batchSize = iterator.next().flatMap(Int.init) ?? batchSize
            case "--worker": workerBinary = iterator.next()
            default:
                print("usage: imagequeue-bench [--redis URL] [--jobs N] [--batch N] [--worker PATH-TO-imagequeue]")
                exit(2)
            }
        }
    }
}

func measure(_ label: String, operations: Int, _ body: () async throws -> Void) async rethrows {
    let clock = ContinuousClock()
    let elapsed = try await clock.measure(body)
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    let rate = Double(operations) / seconds
    let perOperation = seconds / Double(operations) * 1e6
    print("| \(label) | \(operations) | \(String(format2(seconds))) s | \(Int(rate.rounded())) /s | \(format1(perOperation)) µs |")
}

func format2(_ value: Double) -> String { String(Double(Int(value * 100)) / 100) }
func format1(_ value: Double) -> String { String(Double(Int(value * 10)) / 10) }

let options = Options(Array(CommandLine.arguments.dropFirst()))
let redisConfiguration = try RedisConfiguration(url: options.redisURL)
var configuration = QueueConfiguration()
configuration.keyPrefix = "bench\(UInt32.random(in: 0...UInt32.max))"
configuration.rateLimit = nil
let client = try ImageQueueClient(redis: redisConfiguration, configuration: configuration)
let worker = WorkerQueue(redis: redisConfiguration, configuration: configuration, workerID: "bench")
let raw = RedisConnection(configuration: redisConfiguration)
let result = JobResult(contentType: "image/png", bytes: 1, store: "directory", path: "/dev/null")

print("ImageQueue queue-core benchmark: \(options.jobs) jobs, Redis \(raw.endpointDescription)")
print("")
print("| operation | count | time | rate | per operation |")
print("|---|---|---|---|---|")

let pings = options.jobs
try await measure("PING round trip, one caller (client ceiling)", operations: pings) {
    for _ in 0..<pings { try await raw.send("PING") }
}

try await measure("enqueue, one at a time", operations: options.jobs) {
    for index in 0..<options.jobs {
        _ = try await client.enqueue(JobRequest(model: "flux", prompt: "benchmark prompt \(index)", user: "bench"))
    }
}

let batches = options.jobs / options.batchSize
try await measure("enqueue, batches of \(options.batchSize)", operations: batches * options.batchSize) {
    for batch in 0..<batches {
        let requests = (0..<options.batchSize).map {
            JobRequest(model: "sdxl", prompt: "benchmark prompt \(batch)-\($0)", user: "bench")
        }
        _ = try await client.enqueue(batch: requests)
    }
}

try await measure("claim + complete, one claimer", operations: options.jobs) {
    for _ in 0..<options.jobs {
        guard case .claimed(let job) = try await worker.claim(model: "flux", lease: .seconds(30)) else {
            fatalError("queue ran dry")
        }
        try await worker.complete(job, result: result)
    }
}

/// Resident memory of a process, KiB, from /proc.
func residentKiB(_ pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
    return 0
}

if let binary = options.workerBinary {
    let model = "flux"
    let output = FileManager.default.temporaryDirectory.appendingPathComponent("imagequeue-bench-\(getpid())")
    // Pre-fill the queue, then start one worker and time the drain.
    for _ in 0..<(options.jobs / options.batchSize) {
        _ = try await client.enqueue(batch: (0..<options.batchSize).map {
            JobRequest(model: model, prompt: "noop \($0)", user: "bench", enhance: false)
        })
    }
    let total = (options.jobs / options.batchSize) * options.batchSize
    let worker = Process()
    worker.executableURL = URL(fileURLWithPath: binary)
    worker.arguments = ["worker", "--models", model, "--backend", "placeholder", "--redis", options.redisURL,
                        "--prefix", configuration.keyPrefix, "--output-dir", output.path]
    var environment = ProcessInfo.processInfo.environment
    environment["IMAGEQUEUE_PLACEHOLDER_SIZE"] = "8"
    environment["IMAGEQUEUE_LOG_LEVEL"] = "error"
    worker.environment = environment
    worker.standardError = FileHandle.nullDevice
    let meta = configuration.keys.meta(model)
    let baseline = Int(try await raw.send("HGET", meta, "completed_total").int ?? 0)
    let clock = ContinuousClock()
    let started = clock.now
    try worker.run()
    var busyRSS = 0
    while true {
        busyRSS = max(busyRSS, residentKiB(worker.processIdentifier))
        let done = Int(try await raw.send("HGET", meta, "completed_total").int ?? 0)
        if done >= baseline + total { break }
        if !worker.isRunning { print("the worker exited early (status \(worker.terminationStatus))"); exit(1) }
        try await Task.sleep(for: .milliseconds(20))
    }
    let elapsed = clock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    try await Task.sleep(for: .seconds(2))  // idle now: the queue is empty
    let idleRSS = residentKiB(worker.processIdentifier)
    kill(worker.processIdentifier, SIGKILL)
    worker.waitUntilExit()
    try? FileManager.default.removeItem(at: output)
    print("| end to end, one worker process (claim, generate 8×8 PNG, store, complete), from spawn | \(total) | \(format2(seconds)) s | \(Int((Double(total) / seconds).rounded())) /s | \(format1(seconds / Double(total) * 1e6)) µs |")
    print("")
    print("worker resident memory: \(busyRSS / 1024) MiB at most while busy, \(idleRSS / 1024) MiB idle afterwards")
}

// Clean up everything under the prefix (SCAN on every master of a cluster; UNLINK split per slot).
let leftovers = try await raw.scanKeys(matching: "\(configuration.keyPrefix):*")
for start in stride(from: 0, to: leftovers.count, by: 1000) {
    let batch = leftovers[start..<min(start + 1000, leftovers.count)]
    try await raw.send(RedisCommand(arguments: ["UNLINK".redisBytes] + batch))
}
client.close()
worker.close()
raw.close()
