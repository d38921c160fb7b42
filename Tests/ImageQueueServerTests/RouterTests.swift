import Hummingbird
import HummingbirdTesting
@testable import ImageQueueServer
import ImageQueue
import Logging
import RedisClient
import Testing
import TestSupport

/// The API's router in process (HummingbirdTesting, no socket) on a real Redis: the bearer
/// token attached once to the route group, the open probes, 405 with Allow and the dashboard's
/// files. The process-level suite (Tests/ServeTests) runs the same routes through the binary.
@Suite(.runsClients) struct RouterTests {
    static let token = "router-test-token-0123456789"

    func application(protectReads: Bool) throws -> some ApplicationProtocol {
        var configuration = APIServer.Configuration(token: Self.token)
        configuration.protectReads = protectReads
        var queue = QueueConfiguration()
        queue.keyPrefix = TestEnvironment.uniquePrefix("router")
        let server = try APIServer(configuration: configuration, redis: try RedisConfiguration(url: TestEnvironment.redisURL()),
                                   queue: queue, logger: Logger(label: "router-tests"))
        for client in server.clients { _ = runInTest(client) }
        return Application(router: server.makeRouter())
    }

    static func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }
    static let enqueueBody = ByteBuffer(string: #"{"model":"flux","prompt":"a lighthouse","user":"alice"}"#)

    @Test func mutatingRoutesNeedTheTokenAndNeverEchoIt() async throws {
        try await application(protectReads: false).test(.router) { client in
            for headers: HTTPFields in [[:], Self.bearer("wrong-token-0123456789"), [.authorization: Self.token],
                                        Self.bearer(Self.token + "x"), Self.bearer(String(Self.token.dropLast()))] {
                try await client.execute(uri: "/v1/jobs", method: .post, headers: headers, body: Self.enqueueBody) { response in
                    #expect(response.status == .unauthorized, "\(headers)")
                    let body = String(buffer: response.body)
                    #expect(body.contains(#""unauthorized""#), "\(body)")
                    #expect(!body.contains(Self.token), "the token is never echoed")
                }
            }
            for (method, uri) in [(HTTPRequest.Method.delete, "/v1/jobs/flux-01abc"), (.post, "/v1/dead/flux/retry"),
                                  (.delete, "/v1/dead/flux")] {
                try await client.execute(uri: uri, method: method) { response in
                    #expect(response.status == .unauthorized, "\(method) \(uri)")
                }
            }
            try await client.execute(uri: "/v1/jobs", method: .post, headers: Self.bearer(Self.token) + [.contentType: "application/json"],
                                     body: Self.enqueueBody) { response in
                #expect(response.status == .accepted, "\(String(buffer: response.body))")
            }
        }
    }

    @Test func readsAreOpenUnlessProtectReadsIsSet() async throws {
        let reads = ["/v1/queues", "/v1/workers", "/v1/dashboard", "/metrics"]
        try await application(protectReads: false).test(.router) { client in
            for uri in reads {
                try await client.execute(uri: uri, method: .get) { #expect($0.status == .ok, "\(uri)") }
            }
        }
        try await application(protectReads: true).test(.router) { client in
            for uri in reads {
                try await client.execute(uri: uri, method: .get) { #expect($0.status == .unauthorized, "\(uri)") }
                try await client.execute(uri: uri, method: .get, headers: Self.bearer("nope-0123456789")) {
                    #expect($0.status == .unauthorized, "\(uri)")
                }
                try await client.execute(uri: uri, method: .get, headers: Self.bearer(Self.token)) {
                    #expect($0.status == .ok, "\(uri)")
                }
            }
            // Probes and the page carry no token, whatever protectReads says.
            for uri in ["/healthz", "/readyz", "/", "/dashboard/app.js"] {
                try await client.execute(uri: uri, method: .get) { #expect($0.status == .ok, "\(uri)") }
            }
        }
    }

    @Test func anotherMethodOnAKnownPathIs405WithAllowAndAnUnknownPathIs404() async throws {
        try await application(protectReads: true).test(.router) { client in
            try await client.execute(uri: "/v1/jobs", method: .put, headers: Self.bearer(Self.token)) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "POST")
            }
            try await client.execute(uri: "/v1/jobs/flux-01abc", method: .patch) { response in
                #expect(response.status == .methodNotAllowed, "405 comes before the token: the route does not exist")
                #expect(response.headers[.allow] == "DELETE, GET")
            }
            try await client.execute(uri: "/v1/nothing-here", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            }
        }
    }

    @Test func theDashboardsFilesAreServedWithTheirTypes() async throws {
        try await application(protectReads: false).test(.router) { client in
            for (uri, file, type) in [("/", "index.html", "text/html"), ("/dashboard/app.css", "app.css", "text/css"),
                                      ("/dashboard/app.js", "app.js", "text/javascript")] {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == .ok, "\(uri)")
                    #expect(response.headers[.contentType]?.hasPrefix(type) == true, "\(uri)")
                    #expect(String(buffer: response.body) == EmbeddedDashboard.sources[file], "\(uri) is \(file)")
                }
            }
        }
    }
}
