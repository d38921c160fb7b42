import Foundation
import Hummingbird
import HummingbirdTesting
@testable import ImageQueueServer
import ImageQueue
import Logging
import RedisClient
import Testing
import TestSupport

/// `webhook_url` on `POST /v1/jobs` (refused hosts are 400 `invalid_webhook`, nothing queued)
/// and the `webhook` object of `GET /v1/jobs/{id}`.
@Suite(.runsClients) struct WebhookRouteTests {
    static let token = "webhook-route-token-0123456789"

    @Test func refusedWebhooksAre400AndAnAllowedOneShowsInTheStatus() async throws {
        var queue = QueueConfiguration()
        queue.keyPrefix = TestEnvironment.uniquePrefix("hook")
        queue.rateLimit = nil
        queue.webhookAllowHosts = ["127.0.0.1"]
        let server = try APIServer(configuration: APIServer.Configuration(token: Self.token),
                                   redis: try RedisConfiguration(url: TestEnvironment.redisURL()), queue: queue,
                                   logger: Logger(label: "webhook-route-tests"))
        for client in server.clients { _ = runInTest(client) }
        let headers: HTTPFields = [.authorization: "Bearer \(Self.token)", .contentType: "application/json"]
        @Sendable func body(_ webhook: String) -> ByteBuffer {
            ByteBuffer(string: #"{"model":"flux","prompt":"a lighthouse","user":"alice","webhook_url":\#(webhook)}"#)
        }
        try await Application(router: server.makeRouter()).test(.router) { client in
            for url in ["http://192.168.0.10/hook", "http://169.254.169.254/", "http://[fd00::1]/", "gopher://example.com/"] {
                try await client.execute(uri: "/v1/jobs", method: .post, headers: headers, body: body("\"\(url)\"")) { response in
                    #expect(response.status == .badRequest, "\(url)")
                    #expect(String(buffer: response.body).contains(#""invalid_webhook""#), "\(String(buffer: response.body))")
                }
            }
            try await client.execute(uri: "/v1/jobs", method: .post, headers: headers, body: body("null")) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains(#""invalid_json""#), "\(String(buffer: response.body))")
            }
            try await client.execute(uri: "/v1/queues", method: .get) { response in
                let queues = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                #expect((queues?["flux"] as? [String: Any])?["pending"] as? Int == 0, "nothing queued: \(String(buffer: response.body))")
            }
            var id = ""
            try await client.execute(uri: "/v1/jobs", method: .post, headers: headers,
                                     body: body(#""http://user:pw@127.0.0.1:9/hook?token=s3cr3t""#)) { response in
                #expect(response.status == .accepted, "\(String(buffer: response.body))")
                id = (try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])?["id"] as? String ?? ""
            }
            try await client.execute(uri: "/v1/jobs/\(id)", method: .get) { response in
                let job = try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any]
                let webhook = job?["webhook"] as? [String: Any]
                #expect(webhook?["url"] as? String == "http://127.0.0.1:9/hook", "\(String(buffer: response.body))")
                #expect(webhook?["state"] as? String == "waiting" && webhook?["attempts"] as? Int == 0)
                #expect(webhook?.keys.contains("last_status") == true, "absent members are null, not left out")
                #expect(!String(buffer: response.body).contains("s3cr3t") && !String(buffer: response.body).contains("pw@"))
            }
        }
    }
}
