import ArgumentParser
import ImageQueueCommandLine
import ImageQueue
import ImageQueueServer
import Logging
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API, live events (SSE), Prometheus /metrics and the dashboard.",
        discussion: """
            IMAGEQUEUE_API_TOKEN is required: mutating routes (enqueue, cancel, dead retry/purge) need \
            'Authorization: Bearer <token>', and read routes too with --protect-reads. See docs/openapi.yaml.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on.")
    var port = 8080

    @Flag(name: .customLong("protect-reads"), help: "Require the token on read routes too.")
    var protectReads = false

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be a port number") }
    }

    func run() async throws {
        guard let token = Settings.process["IMAGEQUEUE_API_TOKEN"] else {
            throw ConfigurationError(setting: "IMAGEQUEUE_API_TOKEN", reason: "is not set: the API needs a token for its mutating routes")
        }
        guard token.utf8.count >= 8 else {
            throw ConfigurationError(setting: "IMAGEQUEUE_API_TOKEN", reason: "is too short (at least 8 characters)")
        }
        var configuration = APIServer.Configuration(token: token)
        configuration.host = host
        configuration.port = port
        configuration.protectReads = protectReads
        let logger = Logger(label: "imagequeue.serve")
        try await GlobalOptions.verifyRedis(global.redisConfiguration(clientName: "imagequeue-serve"), tolerateUnreachable: true)
        let server = try APIServer(configuration: configuration, redis: global.redisConfiguration(clientName: "imagequeue-serve"),
                                   queue: global.queueConfiguration(), logger: logger)
        Output.error("serving http://\(host):\(port) (dashboard at /, API under /v1, metrics at /metrics)")
        let group = ServiceGroup(configuration: .init(services: [.init(service: server)],
                                                      gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
