import Hummingbird
import Logging
import Prometheus
import ServiceLifecycle

/// Serves `GET /metrics` (Prometheus text) and `GET /healthz` for one worker process.
public struct MetricsServer: Service {
    let registry: PrometheusCollectorRegistry
    let metrics: WorkerMetrics
    let host: String
    let port: Int
    let logger: Logger

    /// Creates the server; `registry` is the one the process bootstrapped swift-metrics with.
    public init(registry: PrometheusCollectorRegistry, metrics: WorkerMetrics, host: String = "0.0.0.0", port: Int, logger: Logger) {
        self.registry = registry
        self.metrics = metrics
        self.host = host
        self.port = port
        self.logger = logger
    }

    public func run() async throws {
        let router = Router()
        let registry = registry
        let metrics = metrics
        router.get("metrics") { _, _ -> Response in
            metrics.refreshLoopAges()
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: registry.emitToString())))
        }
        router.get("healthz") { _, _ in "ok" }
        let application = Application(router: router, configuration: .init(address: .hostname(host, port: port)), logger: logger)
        // As a service of the worker's group (not runService(), which would start a group
        // of its own with its own signal handling and stop before the claim loops).
        try await application.run()
    }
}
