import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Every metric that alerts.yml and the Grafana dashboard read is one the real processes
/// export: a worker (`--metrics-port`) that has completed, retried, failed and fallen back,
/// and `serve`, both scraped over HTTP.
@Suite("ops: alert and dashboard metrics exist")
struct ExportedMetricNamesTests {
    /// Made by Prometheus itself for each target, not by our processes.
    static let prometheusMetrics: Set<String> = ["up"]

    @Test("every metric name in alerts.yml and the dashboard is exported by imagequeue worker or serve, with a matching type")
    func everyUsedMetricIsExported() async throws {
        let fake = try await FakeBackends.start()
        let cli = try QueueCLI(label: "ops")
        defer { cli.removeOutputDirectory() }
        // In enqueue order (one job at a time): job 1's enhancement fails twice (so it falls
        // back to the original prompt) and its first generation is a 503 (retried); job 2's
        // generation is a 400 (dead-lettered).
        try await fake.script("openrouter", [["status": 500], ["status": 500], ["status": 500]])
        try await fake.script("flux", [["status": 503], ["body_kind": "png"], ["status": 400]])
        let metricsPort = try RedisServer.freePort()
        let worker = try cli.startWorker(["--models", "flux", "--metrics-port", "\(metricsPort)", "--metrics-host", "127.0.0.1",
                                          "--output-dir", cli.outputDirectory(), "--id", "\(cli.prefix)-w1"],
                                         environment: fake.environment(llm: "openrouter").merging([
                                             "IMAGEQUEUE_RETRY_BASE_DELAY": "0.01", "IMAGEQUEUE_RETRY_MAX_DELAY": "0.05",
                                             "IMAGEQUEUE_ENHANCE_TIMEOUT": "20",
                                         ]) { $1 })
        defer { worker.send(SIGKILL) }
        let completed = try await cli.enqueue("a lighthouse", enhance: true)
        let failed = try await cli.enqueue("a refused fox", enhance: false)
        let done = try await cli.waitForStatus(completed, "completed", timeout: 120)
        try #require(done["status"]?.string == "completed", "job 1: \(done)\nworker:\n\(worker.output)")
        let dead = try await cli.waitForStatus(failed, timeout: 120) { ["failed", "dead"].contains($0["status"]?.string ?? "") }
        try #require(["failed", "dead"].contains(dead["status"]?.string ?? ""), "job 2: \(dead)\nworker:\n\(worker.output)")

        // The failure is counted just after it is recorded in Redis: poll for it.
        let workerText = try await poll("http://127.0.0.1:\(metricsPort)/metrics") {
            Exposition($0).value("imagequeue_worker_jobs_failed_total", ["model": "flux"]) == 1
        }
        let workerMetrics = Exposition(workerText)
        #expect(workerMetrics.value("imagequeue_worker_jobs_failed_total", ["model": "flux"]) == 1, "worker /metrics:\n\(workerText)")
        #expect(workerMetrics.value("imagequeue_worker_enhancement_fallbacks_total", ["model": "flux"]) == 1, "worker /metrics:\n\(workerText)")

        let serve = try await startServe(cli)
        defer { serve.process.send(SIGKILL) }
        let serveText = try await poll(serve.baseURL + "/metrics")
        let serveMetrics = Exposition(serveText)
        #expect(serveMetrics.value("imagequeue_redis_up") == 1, "serve /metrics:\n\(serveText)")

        var used: [(source: String, name: String)] = []
        for alert in try await PrometheusFiles.load().alerts {
            used += metricNames(in: alert.expression).map { ("alert \(alert.name)", $0) }
        }
        for (panel, expression) in try dashboardExpressions() {
            used += metricNames(in: expression).map { ("panel \(panel)", $0) }
        }
        #expect(used.count > 20, "too few metric references found: \(used)")
        for (source, name) in used where !Self.prometheusMetrics.contains(name) {
            let workerProblem = workerMetrics.problem(with: name)
            let serveProblem = serveMetrics.problem(with: name)
            #expect(workerProblem == nil || serveProblem == nil,
                    "\(source): \(workerProblem ?? "") (worker); \(serveProblem ?? "") (serve)")
        }
        // rate() and increase() over a gauge are meaningless: only counters and buckets.
        let counterUse = /(?:rate|increase)\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)/
        let expressions = try dashboardExpressions().map(\.expression) + (try await PrometheusFiles.load().alerts.map(\.expression))
        for expression in expressions {
            for match in expression.matches(of: counterUse) {
                let name = String(match.1)
                let type = workerMetrics.families[name] ?? serveMetrics.families[name]
                #expect(type == "counter" || name.hasSuffix("_bucket"), "\(name) is a \(type ?? "missing metric"), in: \(expression)")
            }
        }

        worker.send(SIGTERM)
        _ = try await worker.waitForExit()
    }
}
