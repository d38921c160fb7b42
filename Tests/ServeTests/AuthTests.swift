import Foundation
import Testing
import TestSupport

/// The bearer token: always on mutating routes, on read routes only with --protect-reads,
/// never on /healthz, /readyz and /.
@Suite("serve: authentication")
struct AuthTests {
    /// Credentials that must all be refused.
    private func badCredentials(_ token: String) -> [(String, Auth)] {
        [("no Authorization header", .none),
         ("a wrong token", .header("Bearer wrong-token-\(UInt32.random(in: 0...UInt32.max))")),
         ("the token with an extra character", .header("Bearer \(token)x")),
         ("a prefix of the token", .header("Bearer \(token.dropLast())")),
         ("the token in another scheme", .header("Basic \(token)")),
         ("the bare token", .header(token))]
    }

    @Test("mutating routes refuse a missing or wrong token with 401 unauthorized and WWW-Authenticate: Bearer, and change nothing")
    func mutatingRoutesNeedTheToken() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let queued = try await server.enqueue("an owl at dusk")
        let enqueueBody = try jsonText(["model": "flux", "prompt": "a heron", "user": "mallory"])

        let routes: [(method: String, path: String, json: String?)] = [
            ("POST", "/v1/jobs", enqueueBody),
            ("DELETE", "/v1/jobs/\(queued)", nil),
            ("POST", "/v1/dead/flux/retry", nil),
            ("DELETE", "/v1/dead/flux", nil),
        ]
        for route in routes {
            for (label, auth) in badCredentials(server.token) {
                let reply = try await server.send(route.method, route.path, auth: auth, json: route.json)
                let context = "\(route.method) \(route.path) with \(label)"
                expectError(reply, 401, "unauthorized", context)
                #expect(reply.header("WWW-Authenticate")?.hasPrefix("Bearer") == true, "\(context): \(reply.headers)")
            }
        }
        // Nothing was enqueued or cancelled.
        let job = try await server.json("/v1/jobs/\(queued)")
        #expect(job["status"]?.string == "queued")
        let queues = try await server.json("/v1/queues")
        #expect(queues["flux"]?["pending"]?.integer == 1, "\(queues)")

        // Without --protect-reads, reads need no token.
        for path in ["/v1/jobs/\(queued)", "/v1/queues", "/v1/workers", "/v1/dashboard", "/metrics"] {
            let reply = try await server.get(path, auth: .none)
            #expect(reply.status == 200, "GET \(path) without a token: \(reply)")
        }
        let stream = try server.stream("/v1/jobs/\(queued)/events", auth: .none)
        #expect(await stream.waitForHead() == 200, "events without a token: \(stream.process.output)")
        await stream.close()

        // With the token, the mutating route works.
        let accepted = try await server.send("POST", "/v1/jobs", json: enqueueBody)
        #expect(accepted.status == 202, "\(accepted)")

        // The token, right or wrong, never reaches the log.
        let output = server.process.output
        #expect(!output.contains(server.token), "the server printed its token")
        #expect(!output.contains("wrong-token-"), "the server printed a presented token:\n\(output)")
    }

    @Test("with --protect-reads every read route needs the token; /healthz, /readyz and / still do not")
    func protectReads() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer(protectReads: true)
        let queued = try await server.enqueue("a lynx in fog")

        let reads = ["/v1/jobs/\(queued)", "/v1/jobs/\(queued)/image", "/v1/jobs/\(queued)/events", "/v1/events",
                     "/v1/queues", "/v1/workers", "/v1/dashboard", "/metrics"]
        for path in reads {
            for (label, auth) in badCredentials(server.token) {
                // A short timeout: a stream answered instead of a 401 would never end.
                let reply = try await server.get(path, auth: auth, timeout: .seconds(15))
                let context = "GET \(path) with \(label) (--protect-reads)"
                expectError(reply, 401, "unauthorized", context)
                #expect(reply.header("WWW-Authenticate")?.hasPrefix("Bearer") == true, "\(context): \(reply.headers)")
            }
        }
        // With the token they answer.
        for path in ["/v1/jobs/\(queued)", "/v1/queues", "/v1/workers", "/v1/dashboard", "/metrics"] {
            let reply = try await server.get(path)
            #expect(reply.status == 200, "GET \(path) with the token: \(reply)")
        }
        // Not completed: a 409, not a 401.
        expectError(try await server.get("/v1/jobs/\(queued)/image"), 409, "not_completed", "image of a queued job with the token")
        for path in ["/v1/jobs/\(queued)/events", "/v1/events"] {
            let stream = try server.stream(path)
            #expect(await stream.waitForHead() == 200, "\(path) with the token: \(stream.process.output)")
            #expect(stream.mediaType == "text/event-stream", "\(path): \(stream.headers)")
            await stream.close()
        }
        for path in ["/healthz", "/readyz", "/"] {
            let reply = try await server.get(path, auth: .none)
            #expect(reply.status == 200, "GET \(path) without a token under --protect-reads: \(reply)")
        }
    }
}
