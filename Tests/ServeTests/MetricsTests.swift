import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// One sample of Prometheus text: `name{label="value",...} value`.
struct PrometheusSample: Equatable, CustomStringConvertible {
    var name: String
    var labels: [String: String]
    var value: Double
    var description: String { "\(name)\(labels.isEmpty ? "" : "\(labels)") \(value)" }

    /// Every sample line of a text exposition (comments skipped).
    /// - Throws: `TestSetupError` naming a line that is not a sample.
    static func parse(_ text: String) throws -> [PrometheusSample] {
        var samples: [PrometheusSample] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") && !line.allSatisfy(\.isWhitespace) {
            var name = Substring("")
            var labels: [String: String] = [:]
            var rest: Substring
            if let brace = line.firstIndex(of: "{"), let close = line.lastIndex(of: "}") {
                name = line[..<brace]
                var inside = line[line.index(after: brace)..<close]
                while !inside.isEmpty {
                    guard let equals = inside.firstIndex(of: "="),
                          inside[inside.index(after: equals)...].first == "\"" else { throw TestSetupError("bad labels: \(line)") }
                    let key = inside[..<equals].trimmingCharacters(in: .whitespaces)
                    let valueStart = inside.index(equals, offsetBy: 2)
                    guard let quote = inside[valueStart...].firstIndex(of: "\"") else { throw TestSetupError("bad labels: \(line)") }
                    labels[key] = String(inside[valueStart..<quote])
                    inside = inside[inside.index(after: quote)...].drop { $0 == "," || $0 == " " }
                }
                rest = line[line.index(after: close)...]
            } else {
                guard let space = line.firstIndex(of: " ") else { throw TestSetupError("not a sample: \(line)") }
                name = line[..<space]
                rest = line[space...]
            }
            let fields = rest.split(separator: " ")
            guard let first = fields.first, let value = Double(first) ?? (first == "+Inf" ? .infinity : nil) else {
                throw TestSetupError("no value: \(line)")
            }
            samples.append(PrometheusSample(name: String(name), labels: labels, value: value))
        }
        return samples
    }
}

extension Array where Element == PrometheusSample {
    /// The value of `name` (with `model`'s label when given), if exactly one such sample exists.
    func value(_ name: String, model: String? = nil) -> Double? {
        let matching = filter { $0.name == name && (model == nil ? $0.labels.isEmpty : $0.labels["model"] == model) }
        return matching.count == 1 ? matching[0].value : nil
    }
}

@Suite("serve: /metrics")
struct MetricsTests {
    static let perModel = ["imagequeue_queue_pending", "imagequeue_queue_active", "imagequeue_queue_dead",
                           "imagequeue_queue_concurrency", "imagequeue_queue_oldest_pending_age_seconds",
                           "imagequeue_jobs_completed_total", "imagequeue_jobs_failed_total"]

    @Test("Prometheus text read from Redis: a line per model and metric with the right values after two completions")
    func metricsAfterTwoCompletions() async throws {
        let fixture = try ServeFixture()
        defer { fixture.removeOutputDirectory() }
        let server = try await fixture.startServer()

        // Before anything: zeros, every line present.
        let before = try await server.get("/metrics", auth: .none)
        #expect(before.status == 200, "\(before)")
        let initial = try PrometheusSample.parse(before.text)
        for name in Self.perModel where name != "imagequeue_queue_oldest_pending_age_seconds" {
            for model in ["flux", "sdxl"] {
                let expected: Double = name == "imagequeue_queue_concurrency" ? 1 : 0
                #expect(initial.value(name, model: model) == expected, "\(name){model=\"\(model)\"}:\n\(before.text)")
            }
        }
        #expect(initial.value("imagequeue_workers_live") == 0, "\(before.text)")

        let worker = try fixture.startWorker(models: ["flux"])
        for prompt in ["one", "two"] {
            let id = try await server.enqueue(prompt, enhance: false)
            let done = try await server.waitForJob(id, status: "completed")
            try #require(done["status"] == .string("completed"), "worker output:\n\(worker.output)")
        }
        _ = try await server.enqueue("waiting", model: "sdxl")

        let reply = try await server.get("/metrics", auth: .none)
        #expect(reply.status == 200, "\(reply)")
        let contentType = reply.header("Content-Type") ?? ""
        #expect(contentType.hasPrefix("text/plain") && contentType.contains("version=0.0.4"), "Content-Type: \(contentType)")
        let text = reply.text
        let samples = try PrometheusSample.parse(text)

        for name in Self.perModel {
            for model in ["flux", "sdxl"] {
                #expect(samples.value(name, model: model) != nil, "no single \(name){model=\"\(model)\"} line:\n\(text)")
            }
        }
        #expect(text.contains(#"imagequeue_jobs_completed_total{model="flux"} 2"#), "\(text)")
        #expect(samples.value("imagequeue_jobs_completed_total", model: "flux") == 2, "\(text)")
        #expect(samples.value("imagequeue_jobs_completed_total", model: "sdxl") == 0, "\(text)")
        #expect(samples.value("imagequeue_jobs_failed_total", model: "flux") == 0, "\(text)")
        #expect(samples.value("imagequeue_queue_pending", model: "flux") == 0, "\(text)")
        #expect(samples.value("imagequeue_queue_pending", model: "sdxl") == 1, "\(text)")
        #expect(samples.value("imagequeue_queue_active", model: "flux") == 0, "\(text)")
        #expect(samples.value("imagequeue_queue_dead", model: "flux") == 0, "\(text)")
        #expect(samples.value("imagequeue_queue_concurrency", model: "sdxl") == 1, "\(text)")
        let age = samples.value("imagequeue_queue_oldest_pending_age_seconds", model: "sdxl") ?? -1
        #expect(age >= 0 && age < 600, "oldest sdxl age \(age):\n\(text)")
        #expect(samples.value("imagequeue_workers_live") == 1, "\(text)")

        // Whole system, from Redis: a second server on the same prefix reads the same numbers.
        let other = try await fixture.startServer()
        let again = try PrometheusSample.parse(try await other.get("/metrics").text)
        #expect(again.value("imagequeue_jobs_completed_total", model: "flux") == 2)
        #expect(again.value("imagequeue_queue_pending", model: "sdxl") == 1)

        worker.send(SIGTERM)
        _ = try await worker.waitForExit()
    }
}
