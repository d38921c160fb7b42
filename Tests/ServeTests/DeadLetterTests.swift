import CurlHTTP
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `POST /v1/dead/{model}/retry` and `DELETE /v1/dead/{model}`, on jobs a real worker
/// dead-lettered: the fake Flux service rejects them (HTTP 400, a permanent failure).
@Suite("serve: dead letters")
struct DeadLetterTests {
    /// Runs an http-backend Flux worker against the fake until every job in `ids` has failed, then stops it.
    private func failAll(_ ids: [String], fixture: ServeFixture, server: ServeProcess, fake: FakeBackends) async throws {
        let worker = try fixture.startWorker(exactly: ["--models", "flux", "--output-dir", fixture.outputDirectory(),
                                                       "--id", "\(fixture.prefix)-rejecting"],
                                             environment: fake.environment())
        for id in ids {
            let status = try await server.waitForJob(id, status: "failed")
            try #require(status["status"] == .string("failed"), "\(status)\nworker output:\n\(worker.output)")
        }
        worker.send(SIGTERM)
        _ = try await worker.waitForExit()
    }

    @Test("retry one by id, retry all, purge; unknown model 404 unknown_model, a job that is not dead 404 not_found")
    func retryAndPurge() async throws {
        let fixture = try ServeFixture()
        defer { fixture.removeOutputDirectory() }
        let fake = try await FakeBackends.start()
        try await fake.script("flux", Array(repeating: ["status": 400, "error": "no foxes"], count: 12))
        let server = try await fixture.startServer()
        var ids: [String] = []
        for number in 1...3 { ids.append(try await server.enqueue("doomed \(number)", enhance: false)) }
        try await failAll(ids, fixture: fixture, server: server, fake: fake)

        let queues = try await server.json("/v1/queues")
        #expect(queues["flux"]?["dead"] == .integer(3), "\(queues)")
        #expect(queues["flux"]?["failed_total"] == .integer(3), "\(queues)")
        let failed = try await server.json("/v1/jobs/\(ids[0])")
        #expect(failed["error"]?["code"] == .string("backend_rejected"), "\(failed)")
        // The dashboard lists them, newest first.
        let dashboard = try await server.json("/v1/dashboard")
        let listed = dashboard["failed"]?.array?.compactMap { $0["id"]?.string } ?? []
        #expect(listed == ids.reversed(), "dashboard failed: \(listed), expected \(ids.reversed())")

        // One, by id.
        let one = try await server.send("POST", "/v1/dead/flux/retry", json: try jsonText(["id": ids[0]]))
        #expect(one.status == 200, "\(one)")
        #expect(try one.json() == .object(["retried": .integer(1)]), "\(one)")
        let requeued = try await server.json("/v1/jobs/\(ids[0])")
        #expect(requeued["status"] == .string("queued"), "\(requeued)")
        #expect(requeued["position"] == .integer(1), "\(requeued)")
        #expect(try await server.json("/v1/jobs/\(ids[1])")["status"] == .string("failed"))
        // That job is no longer dead.
        expectError(try await server.send("POST", "/v1/dead/flux/retry", json: try jsonText(["id": ids[0]])), 404, "not_found",
                    "retry a job that is not dead")
        expectError(try await server.send("POST", "/v1/dead/flux/retry", json: try jsonText(["id": "flux-01jzzzzzzzzzzzzzzzzzzzzzzz"])),
                    404, "not_found", "retry an unknown job")
        // Unknown models: the path names a dead list that does not exist here.
        expectError(try await server.send("POST", "/v1/dead/nope/retry"), 404, "unknown_model", "retry of an unknown model")
        expectError(try await server.send("DELETE", "/v1/dead/nope"), 404, "unknown_model", "purge of an unknown model")
        // An id that is null, empty or not a job id retries nothing: the 2 other jobs stay dead.
        expectError(try await server.send("POST", "/v1/dead/flux/retry", json: #"{"id": null}"#), 400, "invalid_json", "id null")
        expectError(try await server.send("POST", "/v1/dead/flux/retry", json: #"{"id": ""}"#), 400, "invalid_job_id", "id empty")
        expectError(try await server.send("POST", "/v1/dead/flux/retry", json: #"{"id": "nodash"}"#), 400, "invalid_job_id",
                    "id not a job id")
        #expect(try await server.json("/v1/queues")["flux"]?["dead"] == .integer(2), "a refused retry requeued jobs")

        // All the rest, with no body.
        let rest = try await server.send("POST", "/v1/dead/flux/retry")
        #expect(rest.status == 200, "\(rest)")
        #expect(try rest.json() == .object(["retried": .integer(2)]), "\(rest)")
        let afterRetry = try await server.json("/v1/queues")
        #expect(afterRetry["flux"]?["dead"] == .integer(0), "\(afterRetry)")
        #expect(afterRetry["flux"]?["pending"] == .integer(3), "\(afterRetry)")

        // Dead again, then purged.
        try await failAll(ids, fixture: fixture, server: server, fake: fake)
        let purge = try await server.send("DELETE", "/v1/dead/flux")
        #expect(purge.status == 200, "\(purge)")
        #expect(try purge.json() == .object(["purged": .integer(3)]), "\(purge)")
        for id in ids { expectError(try await server.get("/v1/jobs/\(id)"), 404, "not_found", "a purged job") }
        #expect(try await server.json("/v1/queues")["flux"]?["dead"] == .integer(0))
        #expect(try await server.send("DELETE", "/v1/dead/flux").json() == .object(["purged": .integer(0)]))
        #expect(try await server.send("POST", "/v1/dead/flux/retry").json() == .object(["retried": .integer(0)]))
    }

    @Test("the optional body: an empty one counts as none, whatever Content-Type the client library adds")
    func emptyBodyIsNoBody() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        // HTTPClient (libcurl) sends a nil-body POST as Content-Length: 0 with its default
        // "application/x-www-form-urlencoded", as `curl -d ''` does.
        let request = HTTPRequest(method: "POST", url: server.baseURL + "/v1/dead/flux/retry",
                                  headers: [("Authorization", "Bearer \(server.token)")])
        let response = try await HTTPClient().send(request)
        #expect(response.status == 200, "\(response.status) \(String(decoding: response.body, as: UTF8.self))")
        // A JSON body of the wrong shape is refused; `{}` is "all", like no body.
        expectError(try await server.send("POST", "/v1/dead/flux/retry", json: #"{"id": 5}"#), 400, "invalid_json", "id not a string")
        expectError(try await server.send("POST", "/v1/dead/flux/retry", json: #"{"id": null}"#), 400, "invalid_json", "id null")
        expectError(try await server.send("POST", "/v1/dead/flux/retry", json: #"[]"#), 400, "invalid_json", "not an object")
        let all = try await server.send("POST", "/v1/dead/flux/retry", json: "{}")
        #expect(all.status == 200, "\(all)")
        #expect(try all.json() == .object(["retried": .integer(0)]), "\(all)")
    }
}
