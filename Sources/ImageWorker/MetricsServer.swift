import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle

/// Serves `GET /metrics` (Prometheus text) and `GET /healthz` for one worker process.
///
/// Built on HummingbirdCore's HTTP/1 server rather than the full Hummingbird framework: two
/// fixed routes need no router, and the framework brings the full Foundation (with ICU)
/// into the worker, about 6 MiB of the idle process's resident memory.
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
        let registry = registry
        let metrics = metrics
        // One event loop is plenty for a scrape every few seconds; the shared singleton
        // group would start one thread per core.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = Server(
            childChannelSetup: HTTP1Channel(responder: { request, writer, _ in
                let response = Self.response(to: request) {
                    metrics.refreshLoopAges()
                    return registry.emitToString()
                }
                try await writer.write(response: response.head, body: response.body)
            }),
            configuration: .init(address: .hostname(host, port: port)),
            eventLoopGroup: group,
            logger: logger
        )
        // As a service of the worker's group (not a group of its own, which would bring its
        // own signal handling and stop before the claim loops).
        do {
            try await server.run()
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    /// The answer to one request: the metrics text, `ok`, 404 for another path and 405 for
    /// another method.
    static func response(to request: Request, metricsText: () -> String) -> Response {
        let path = request.uri.path
        guard path == "/metrics" || path == "/healthz" else {
            return text(.notFound, "not found\n")
        }
        guard request.method == .get || request.method == .head else {
            var response = text(.methodNotAllowed, "method not allowed\n")
            response.headers[.allow] = "GET, HEAD"
            return response
        }
        let answer = path == "/metrics"
            ? text(.ok, metricsText(), contentType: "text/plain; version=0.0.4; charset=utf-8")
            : text(.ok, "ok")
        return request.method == .head ? answer.createHeadResponse() : answer
    }

    private static func text(_ status: HTTPResponse.Status, _ body: String,
                             contentType: String = "text/plain; charset=utf-8") -> Response {
        Response(status: status, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
