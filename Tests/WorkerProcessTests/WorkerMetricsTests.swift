import CurlHTTP
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `--metrics-port`: Prometheus text on `/metrics` and a liveness answer on `/healthz`, served
/// by the lean `imagequeue-worker` (the same options and code as `imagequeue worker`).
@Suite("worker metrics endpoint")
struct WorkerMetricsTests {
    @Test("after three jobs, /metrics counts them and shows queue wait and claim-loop idle time")
    func metricsAfterThreeJobs() async throws {
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let port = try RedisServer.freePort()
        let worker = try cli.startStandaloneWorker(["--models", "flux", "--backend", "placeholder", "--metrics-port", "\(port)",
                                          "--output-dir", cli.outputDirectory(), "--id", "\(cli.prefix)-w1"])
        var ids: [String] = []
        for number in 1...3 { ids.append(try await cli.enqueue("metrics job \(number)")) }
        for id in ids {
            let status = try await cli.waitForStatus(id, "completed")
            try #require(status["status"]?.string == "completed", "worker output:\n\(worker.output)")
        }

        let http = HTTPClient()
        let base = "http://127.0.0.1:\(port)"
        // The counter moves just after the job's completion is recorded: poll briefly.
        var text = ""
        let deadline = ContinuousClock.now + .seconds(10)
        repeat {
            if let response = try? await http.send(HTTPRequest(url: base + "/metrics")), response.status == 200 {
                text = String(decoding: response.body, as: UTF8.self)
                if sample(text, "imagequeue_worker_jobs_completed_total", model: "flux") == 3 { break }
            }
            try await Task.sleep(for: .milliseconds(100))
        } while ContinuousClock.now < deadline

        #expect(sample(text, "imagequeue_worker_jobs_completed_total", model: "flux") == 3, "metrics:\n\(text)")
        // The queue wait is a histogram: buckets, and a count of one observation per job.
        #expect(text.contains(#"imagequeue_worker_queue_wait_seconds_bucket{model="flux",le="#), "metrics:\n\(text)")
        #expect(sample(text, "imagequeue_worker_queue_wait_seconds_count", model: "flux") == 3, "metrics:\n\(text)")
        #expect(sample(text, "imagequeue_worker_claim_loop_idle_seconds", model: "flux") != nil, "metrics:\n\(text)")
        // Documented by WorkerMetrics ("jobs in flight"); nothing runs now.
        #expect(sample(text, "imagequeue_worker_jobs_in_flight") == 0, "metrics:\n\(text)")

        let health = try await http.send(HTTPRequest(url: base + "/healthz"))
        #expect(health.status == 200)
        #expect(String(decoding: health.body, as: UTF8.self) == "ok")
        let head = try await http.send(HTTPRequest(method: "HEAD", url: base + "/metrics"))
        #expect(head.status == 200 && head.body.isEmpty)
        let elsewhere = try await http.send(HTTPRequest(url: base + "/metrics/extra"))
        #expect(elsewhere.status == 404)
        let posted = try await http.send(HTTPRequest(method: "POST", url: base + "/metrics", body: Array("x=1".utf8)))
        #expect(posted.status == 405)
        #expect(posted.headers["allow"] == "GET, HEAD")

        // The lean executable maps no full Foundation (and so no ICU data): that is what it
        // is for.
        let maps = try String(contentsOfFile: "/proc/\(worker.pid)/maps", encoding: .utf8)
        for library in ["libFoundation.so", "libFoundationInternationalization.so", "lib_FoundationICU.so"] {
            #expect(!maps.contains("/\(library)"), "imagequeue-worker maps \(library)")
        }

        worker.send(SIGTERM)
        let ended = try await worker.waitForExit()
        #expect(ended == .exited(0), "worker output:\n\(worker.output)")
    }

    /// The value of the sample `name value`, or `name{…model="<model>"…} value` (not a
    /// histogram bucket), in Prometheus text, if present.
    private func sample(_ text: String, _ name: String, model: String? = nil) -> Double? {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count >= 2 else { continue }
            let series = parts[0]
            if let model {
                guard series.hasPrefix("\(name){"), series.contains("model=\"\(model)\""), !series.contains("le=") else { continue }
            } else {
                guard series == name || series == "\(name){}" else { continue }
            }
            return Double(parts[1])
        }
        return nil
    }
}
