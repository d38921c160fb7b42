import Foundation
import Testing
import TestSupport

/// `/readyz` follows Redis; `/healthz` does not.
@Suite("serve: readiness against a private Redis")
struct ReadinessTests {
    @Test("Redis stopped: /readyz and POST /v1/jobs are 503 redis_unavailable, /healthz stays 200; Redis back: ready again")
    func followsRedis() async throws {
        let redis = try await RedisServer.launch()
        let fixture = try ServeFixture(redisURL: redis.url)
        let server = try await fixture.startServer()
        let ready = try await server.get("/readyz", auth: .none)
        #expect(ready.status == 200, "\(ready)")
        #expect(try ready.json() == .object(["status": .string("ready")]))

        await redis.stop()
        var notReady: Reply?
        let failed = try await eventually(within: .seconds(30), every: .milliseconds(100)) {
            let reply = try await server.get("/readyz", auth: .none)
            notReady = reply
            return reply.status == 503
        }
        #expect(failed, "readyz with Redis stopped: \(notReady.map(\.description) ?? "-")")
        if let notReady { expectError(notReady, 503, "redis_unavailable", "/readyz with Redis stopped") }

        let health = try await server.get("/healthz", auth: .none)
        #expect(health.status == 200, "healthz with Redis stopped: \(health)")

        let enqueue = try await server.send("POST", "/v1/jobs", json: try jsonText(["model": "flux", "prompt": "a fox", "user": "alice"]))
        expectError(enqueue, 503, "redis_unavailable", "enqueue with Redis stopped")
        // Reads fail too, as a JSON server error (the contract names no code for them).
        let queues = try await server.get("/v1/queues")
        #expect(queues.status >= 500 && queues.errorCode != nil, "queues with Redis stopped: \(queues)")

        try await redis.start()
        var back: Reply?
        let recovered = try await eventually(within: .seconds(30), every: .milliseconds(100)) {
            let reply = try await server.get("/readyz", auth: .none)
            back = reply
            return reply.status == 200
        }
        #expect(recovered, "readyz after Redis came back: \(back.map(\.description) ?? "-")")
        let accepted = try await server.send("POST", "/v1/jobs", json: try jsonText(["model": "flux", "prompt": "a fox", "user": "alice"]))
        #expect(accepted.status == 202, "enqueue after Redis came back: \(accepted)")
        #expect(server.process.isRunning)
    }
}
