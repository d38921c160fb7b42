import Hummingbird
import HummingbirdTesting
@testable import ImageQueueServer
import ImageQueue
import Logging
import RedisClient
import Testing
import TestSupport

/// Pause/resume and priorities through the API's router, in process on a real Redis.
@Suite(.runsClients) struct QueueControlRouteTests {
    static let token = "queue-control-route-token-0123456789"

    func application() throws -> some ApplicationProtocol {
        var queue = QueueConfiguration()
        queue.keyPrefix = TestEnvironment.uniquePrefix("qctl")
        let server = try APIServer(configuration: APIServer.Configuration(token: Self.token),
                                   redis: try RedisConfiguration(url: TestEnvironment.redisURL()),
                                   queue: queue, logger: Logger(label: "queue-control-route-tests"))
        for client in server.clients { _ = runInTest(client) }
        return Application(router: server.makeRouter())
    }

    static let bearer: HTTPFields = [.authorization: "Bearer \(token)", .contentType: "application/json"]

    func json(_ response: TestResponse) throws -> ParsedJSON { try ParsedJSON.parse(String(buffer: response.body)) }

    @Test func pauseAndResumeNeedTheTokenShowInQueuesAndMetricsAndRefuseAnUnknownModel() async throws {
        try await application().test(.router) { client in
            for path in ["/v1/queues/flux/pause", "/v1/queues/flux/resume"] {
                try await client.execute(uri: path, method: .post) { #expect($0.status == .unauthorized, "\(path)") }
            }
            try await client.execute(uri: "/v1/queues/flux/pause", method: .post, headers: Self.bearer) { response in
                #expect(response.status == .ok)
                let body = try json(response)
                #expect(body["model"]?.string == "flux" && body["paused"] == .bool(true) && body["changed"] == .bool(true), "\(body)")
            }
            try await client.execute(uri: "/v1/queues/flux/pause", method: .post, headers: Self.bearer) { response in
                let body = try json(response)
                #expect(body["changed"] == .bool(false), "\(body)")
            }
            try await client.execute(uri: "/v1/queues", method: .get) { response in
                let body = try json(response)
                #expect(body["flux"]?["paused"] == .bool(true) && body["sdxl"]?["paused"] == .bool(false), "\(body)")
            }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(text.contains(#"imagequeue_queue_paused{model="flux"} 1"#), "\(text)")
                #expect(text.contains(#"imagequeue_queue_paused{model="sdxl"} 0"#), "\(text)")
            }
            try await client.execute(uri: "/v1/queues/flux/resume", method: .post, headers: Self.bearer) { response in
                let body = try json(response)
                #expect(body["paused"] == .bool(false) && body["changed"] == .bool(true), "\(body)")
            }
            try await client.execute(uri: "/v1/queues", method: .get) { response in
                let body = try json(response)
                #expect(body["flux"]?["paused"] == .bool(false), "\(body)")
            }
            try await client.execute(uri: "/v1/queues/dalle/pause", method: .post, headers: Self.bearer) { response in
                #expect(response.status == .notFound)
                #expect(String(buffer: response.body).contains(#""code":"unknown_model""#))
            }
        }
    }

    @Test func aPriorityIsStoredAndShownAndAnUnknownOneIsA400() async throws {
        try await application().test(.router) { client in
            var ids: [String] = []
            for level in ["low", "high"] {
                let body = ByteBuffer(string: #"{"model":"flux","prompt":"a heron","user":"alice","priority":"\#(level)"}"#)
                try await client.execute(uri: "/v1/jobs", method: .post, headers: Self.bearer, body: body) { response in
                    #expect(response.status == .accepted, "\(String(buffer: response.body))")
                    ids.append(try json(response)["id"]?.string ?? "")
                }
            }
            #expect(ids.count == 2)
            try await client.execute(uri: "/v1/jobs/\(ids[0])", method: .get) { response in
                let body = try json(response)
                #expect(body["priority"]?.string == "low" && body["position"]?.integer == 2, "\(body)")
            }
            try await client.execute(uri: "/v1/jobs/\(ids[1])", method: .get) { response in
                let body = try json(response)
                #expect(body["priority"]?.string == "high" && body["position"]?.integer == 1, "\(body)")
            }
            for bad in [#""urgent""#, "1", "null"] {
                let body = ByteBuffer(string: #"{"model":"flux","prompt":"a heron","user":"alice","priority":\#(bad)}"#)
                try await client.execute(uri: "/v1/jobs", method: .post, headers: Self.bearer, body: body) { response in
                    #expect(response.status == .badRequest, "\(bad)")
                    let text = String(buffer: response.body)
                    #expect(text.contains(bad == #""urgent""# ? "invalid_priority" : "invalid_json"), "\(bad): \(text)")
                }
            }
        }
    }
}
