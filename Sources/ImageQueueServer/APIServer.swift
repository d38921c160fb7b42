import Hummingbird
import ImageQueue
import Logging
import RedisClient
import ServiceLifecycle
import Synchronization

/// `imagequeue serve`: the HTTP API for other services (enqueue, status, cancel, image,
/// live events), the operators' routes (queues, workers, dead lists, Prometheus metrics,
/// health) and the live dashboard at `/`.
public struct APIServer: Service {
    /// How the server runs.
    public struct Configuration: Sendable {
        /// Address to listen on.
        public var host = "127.0.0.1"
        /// Port to listen on.
        public var port = 8080
        /// The bearer token mutating routes require (and read routes with `protectReads`).
        public var token: String
        /// Whether read routes need the token too.
        public var protectReads = false
        /// Largest request body accepted.
        public var maxBodyBytes = 64 * 1024
        /// Interval of the SSE keep-alive comment.
        public var keepAlive: Duration = .seconds(15)

        /// Creates a configuration.
        public init(token: String) { self.token = token }
    }

    let configuration: Configuration
    let client: ImageQueueClient
    let subscriber: RedisSubscriber
    let streams = OpenStreams()
    let logger: Logger

    /// Creates the server on a Redis server.
    /// - Throws: `ImageQueueError` for an invalid queue configuration.
    public init(configuration: Configuration, redis: RedisConfiguration, queue: QueueConfiguration, logger: Logger) throws(ImageQueueError) {
        self.configuration = configuration
        self.logger = logger
        client = try ImageQueueClient(redis: redis, configuration: queue, logger: logger)
        subscriber = RedisSubscriber(configuration: redis, logger: logger)
    }

    /// The Redis clients the routes use; `run()` runs them (a test of `makeRouter()` runs them itself).
    var clients: [any ClosableService] { [client, subscriber] }

    public func run() async throws {
        let application = Application(router: makeRouter(),
                                      configuration: .init(address: .hostname(configuration.host, port: configuration.port),
                                                           serverName: "imagequeue"),
                                      logger: logger)
        // The Redis clients outlive the HTTP server: requests in flight during a graceful
        // shutdown still reach Redis.
        try await withRunning(clients) {
            // Event streams never end on their own: close them when shutdown begins, or the
            // server would wait for every open dashboard tab to go away.
            try await withGracefulShutdownHandler {
                try await application.run()
            } onGracefulShutdown: {
                streams.closeAll()
            }
        }
    }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        // The middleware is added first (it wraps only what is added after it); it learns the
        // routes once they are all there, to answer other methods on them with 405.
        let routes = RouteTable()
        router.add(middleware: JSONErrorMiddleware(routes: routes))
        // Every /v1 route and /metrics behind the bearer token, checked once for the group.
        let api = router.group().add(middleware: BearerTokenMiddleware(token: configuration.token,
                                                                       protectReads: configuration.protectReads))
        addJobRoutes(to: api)
        addStreamRoutes(to: api)
        addOperatorRoutes(to: api)
        addProbeRoutes(to: router)
        for asset in DashboardAsset.all {
            router.get(RouterPath(asset.path)) { request, _ in asset.response(to: request) }
        }
        // A job's page: the same page, which shows the job named in its path (any text: the
        // page itself says when there is no such job).
        let page = DashboardAsset.page
        router.get("/jobs/:id") { request, _ in page.response(to: request) }
        routes.set(router.routes.map { ($0.path, $0.method) })
        return router
    }
}

/// The router's routes, to tell "no such path" (404) from "no such method on this path" (405).
final class RouteTable: Sendable {
    private let routes = Mutex<[(path: RouterPath, method: HTTPRequest.Method)]>([])

    func set(_ routes: [(path: RouterPath, method: HTTPRequest.Method)]) {
        self.routes.withLock { $0 = routes }
    }

    /// The methods routed for `path` (a request path), sorted; empty for an unknown path.
    func methods(for path: String) -> [String] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        let methods = routes.withLock { routes in
            routes.filter { route in
                route.path.components.count == segments.count
                    && zip(route.path.components, segments).allSatisfy { $0 ~= $1 }
            }.map(\.method.rawValue)
        }
        return Set(methods).sorted()
    }
}

/// Answers the framework's own errors (no such route, wrong method...) in the API's JSON
/// error shape, like every other error. A method the API does not serve on a known path
/// (TRACE, PUT, HEAD, OPTIONS...) is a 405 with `Allow` listing the ones it does.
struct JSONErrorMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            if error.status == .notFound {
                let allowed = routes.methods(for: request.uri.path)
                if !allowed.isEmpty, !allowed.contains(request.method.rawValue) {
                    let list = allowed.joined(separator: ", ")
                    throw APIError(.methodNotAllowed, "method_not_allowed", "\(request.method) is not served on \(request.uri.path); use \(list)",
                                   headers: [.allow: list])
                }
            }
            let code = switch error.status {
            case .notFound: "not_found"
            case .methodNotAllowed: "method_not_allowed"
            case .contentTooLarge: "payload_too_large"
            default: "http_\(error.status.code)"
            }
            throw APIError(error.status, code, error.body ?? "\(error.status.reasonPhrase): \(request.method) \(request.uri.path)")
        }
    }
}

extension APIServer: CustomStringConvertible {
    public var description: String { "APIServer(\(configuration.host):\(configuration.port))" }
}
