import Foundation
import Testing
import TestSupport

/// ops/prometheus: the scrape config and the alert rules parse, scrape what the compose stack
/// runs, and hold the alerts docs/OPERATIONS.md has a runbook line for.
@Suite("ops: Prometheus config and alert rules")
struct PrometheusConfigTests {
    /// Every alert docs/OPERATIONS.md explains, and the metric each must watch.
    static let requiredAlerts: [String: String] = [
        "ImageQueueRedisDown": "imagequeue_redis_up",
        "ImageQueueServeDown": "up",
        "ImageQueueNoLiveWorker": "imagequeue_queue_workers_live",
        "ImageQueueOldestPendingJobTooOld": "imagequeue_queue_oldest_pending_age_seconds",
        "ImageQueueDeadJobsRising": "imagequeue_jobs_failed_total",
        "ImageQueueWorkerDown": "up",
        "ImageQueueClaimLoopStalled": "imagequeue_worker_claim_loop_idle_seconds",
    ]

    @Test("prometheus.yml parses: serve on its default port, the three compose workers on 9464, alerts.yml as its rules")
    func scrapeConfig() async throws {
        let files = try await PrometheusFiles.load()
        #expect(files.ruleFiles == ["alerts.yml"])
        // serve's default port, as its own --help states it.
        let help = try await QueueCLI().runExactly(["serve", "--help"])
        let port = try #require(help.stdout.firstMatch(of: /--port <port>[^\n]*\(default: (\d+)\)/)?.1, "serve --help:\n\(help.stdout)")
        #expect(files.scrapeTargets["serve"] == ["serve:\(port)"], "\(files.scrapeTargets)")
        #expect(Set(files.scrapeTargets["worker"] ?? []) == ["flux-worker-1:9464", "flux-worker-2:9464", "sdxl-worker:9464"],
                "\(files.scrapeTargets)")
        // The worker flag the compose file and the scrape config rely on.
        let workerHelp = try await QueueCLI().runExactly(["worker", "--help"])
        #expect(workerHelp.stdout.contains("--metrics-port"), "worker --help:\n\(workerHelp.stdout)")
    }

    @Test("alerts.yml parses and has every required alert, each on its metric, with a severity and a summary")
    func alertRules() async throws {
        let files = try await PrometheusFiles.load()
        let byName = Dictionary(files.alerts.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(byName.count == files.alerts.count, "duplicate alert names: \(files.alerts.map(\.name))")
        for (name, metric) in Self.requiredAlerts {
            guard let alert = byName[name] else {
                Issue.record("alerts.yml has no \(name); it has \(byName.keys.sorted())")
                continue
            }
            #expect(metricNames(in: alert.expression).contains(metric), "\(name) does not read \(metric): \(alert.expression)")
            #expect(["critical", "warning"].contains(alert.labels["severity"] ?? ""), "\(name) severity: \(alert.labels)")
            #expect(!(alert.annotations["summary"] ?? "").isEmpty, "\(name) has no summary")
        }
    }

    @Test("docs/OPERATIONS.md has a runbook entry for every alert in alerts.yml")
    func everyAlertHasARunbookEntry() async throws {
        let files = try await PrometheusFiles.load()
        let operations = try packageFile("docs/OPERATIONS.md")
        for alert in files.alerts {
            #expect(operations.contains("`\(alert.name)`"), "docs/OPERATIONS.md does not explain \(alert.name)")
        }
    }

    @Test("promtool check config, check rules and the alerts' unit tests pass (skipped when promtool is not installed)")
    func promtoolAgrees() async throws {
        guard programOnPath("promtool") != nil else {
            print("OpsTests: promtool is not on PATH; skipping `promtool check` and `promtool test rules`. Debian's "
                  + "prometheus package has it but also installs and starts a Prometheus server (19 MB download, 96 MB "
                  + "installed), so CI does not install it. To run this part: apt-get download prometheus && dpkg-deb -x "
                  + "prometheus_*.deb DIR, then put DIR/usr/bin on PATH.")
            return
        }
        let config = TestEnvironment.packageRoot.appendingPathComponent("ops/prometheus/prometheus.yml").path
        let rules = TestEnvironment.packageRoot.appendingPathComponent("ops/prometheus/alerts.yml").path
        let checkConfig = try await runOnPath(["promtool", "check", "config", config])
        #expect(checkConfig.status == 0, "promtool check config:\n\(checkConfig.stdout)\(checkConfig.stderr)")
        let checkRules = try await runOnPath(["promtool", "check", "rules", rules])
        #expect(checkRules.status == 0, "promtool check rules:\n\(checkRules.stdout)\(checkRules.stderr)")
        #expect(checkRules.stdout.contains("SUCCESS: \(Self.requiredAlerts.count) rules found"), "\(checkRules.stdout)")
        // alerts_test.yml: each alert fires on the series it should, and not on the others.
        let unitTests = TestEnvironment.packageRoot.appendingPathComponent("ops/prometheus/alerts_test.yml").path
        let testRules = try await runOnPath(["promtool", "test", "rules", unitTests])
        #expect(testRules.status == 0, "promtool test rules:\n\(testRules.stdout)\(testRules.stderr)")
    }

    @Test("the PromQL name reader finds metrics and skips functions, label lists, matchers and ranges")
    func metricNameReader() {
        let expression = #"sum by (le, model) (rate(imagequeue_worker_job_seconds_bucket{model="flux"}[5m])) > 0"#
            + " unless on (job, instance) imagequeue_worker_jobs_in_flight > 0 or up{job=\"worker\"} == 0"
        #expect(metricNames(in: expression) == ["imagequeue_worker_job_seconds_bucket", "imagequeue_worker_jobs_in_flight", "up"])
        #expect(metricNames(in: "histogram_quantile(0.95, sum by (le) (rate(x_bucket[$__rate_interval])))") == ["x_bucket"])
    }
}

/// ops/grafana/imagequeue-dashboard.json: an importable dashboard with the panels operators need.
@Suite("ops: Grafana dashboard")
struct GrafanaDashboardTests {
    @Test("the dashboard is JSON with schemaVersion 39, a DS_PROMETHEUS input used by every panel, and the required panels")
    func dashboardShape() throws {
        let dashboard = try ParsedJSON.parse(try packageFile("ops/grafana/imagequeue-dashboard.json"))
        #expect(dashboard["schemaVersion"]?.integer == 39)
        #expect(dashboard["__inputs"]?.array?.first?["name"]?.string == "DS_PROMETHEUS")
        #expect(dashboard["__inputs"]?.array?.first?["pluginId"]?.string == "prometheus")
        let panels = dashboard["panels"]?.array ?? []
        var ids: Set<Int64> = []
        for panel in panels {
            let title = panel["title"]?.string ?? "?"
            #expect(panel["datasource"]?["uid"]?.string == "${DS_PROMETHEUS}", "panel \(title)")
            let targets = panel["targets"]?.array ?? []
            #expect(targets.count > 0, "panel \(title) has no query")
            for target in targets {
                #expect(target["datasource"]?["uid"]?.string == "${DS_PROMETHEUS}", "a query of panel \(title)")
            }
            if let id = panel["id"]?.integer { #expect(ids.insert(id).inserted, "panel id \(id) repeats") }
        }
        let expressions = try dashboardExpressions().map(\.expression).joined(separator: "\n")
        // One query per required view: queue depths, throughput, latency percentiles from the
        // histograms, enhancement fallbacks, live workers, claim-loop staleness, Redis.
        for needle in ["imagequeue_queue_pending", "imagequeue_queue_active", "imagequeue_queue_dead",
                       "rate(imagequeue_jobs_completed_total", "rate(imagequeue_jobs_failed_total",
                       "histogram_quantile(0.95, sum by (le, model) (rate(imagequeue_worker_job_seconds_bucket",
                       "rate(imagequeue_worker_enhancement_fallbacks_total", "imagequeue_queue_workers_live",
                       "imagequeue_worker_claim_loop_idle_seconds", "imagequeue_redis_up"] {
            #expect(expressions.contains(needle), "no dashboard query has \(needle)")
        }
    }
}
