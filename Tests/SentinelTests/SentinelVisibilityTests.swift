import CurlHTTP
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Which server is the master, and when the master last moved, as an operator reads it: in
/// `imagequeue workers`, `/readyz` and `/metrics` of the release binaries.
@Suite("Sentinel: the master and the last failover, shown", .serialized)
struct SentinelVisibilityTests {
    /// One HTTP GET to 127.0.0.1:`port` with the bearer `token`.
    static func get(_ port: Int, _ path: String, token: String) async throws -> (status: Int, body: String) {
        var request = HTTPRequest(method: "GET", url: "http://127.0.0.1:\(port)\(path)", headers: [("Authorization", "Bearer \(token)")])
        request.timeout = .seconds(30)
        let response = try await HTTPClient().send(request)
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    @Test("workers, /readyz and /metrics name the master before and after it is killed, with the failover's time")
    func masterAndLastFailoverAreShown() async throws {
        let deployment = try await LocalSentinel.start()
        defer { withExtendedLifetime(deployment) {} }
        let cli = try QueueCLI(redisURL: deployment.url, label: "sv")
        defer { cli.removeOutputDirectory() }
        let worker = try cli.startWorker(["--models", "flux", "--backend", "placeholder", "--output-dir", try cli.outputDirectory(),
                                          "--id", "\(cli.prefix)-w"], environment: ["IMAGEQUEUE_RESULT_STORE": "redis"])
        defer { worker.send(SIGKILL) }
        let token = "tok-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let port = try RedisServer.freePort()
        let server = try cli.start(["serve", "--host", "127.0.0.1", "--port", "\(port)", "--redis", deployment.url, "--prefix", cli.prefix],
                                   environment: ["IMAGEQUEUE_API_TOKEN": token])
        defer { server.send(SIGKILL) }
        let before = "127.0.0.1:\(deployment.masterPort)"

        var ready: (status: Int, body: String) = (0, "")
        #expect(try await eventually(every: .milliseconds(100)) {
            ready = (try? await Self.get(port, "/readyz", token: token)) ?? (0, "")
            return ready.status == 200
        }, "/readyz: \(ready)\nserve output:\n\(server.output)")
        let readiness = try ParsedJSON.parse(ready.body)
        #expect(readiness["redis"]?["master"]?.string == before, "\(ready.body)")
        #expect(readiness["redis"]?["last_failover_at"] == nil, "no failover yet: \(ready.body)")
        var workers = ParsedJSON.null
        #expect(try await eventually(every: .milliseconds(100)) {
            workers = (try? await cli.json(["workers", "--json"])) ?? .null
            return workers.array?.first?["redis_master"]?.string == before
        }, "workers: \(workers)\nworker output:\n\(worker.output)")

        let killedAt = Int64(Date().timeIntervalSince1970 * 1000)
        try await deployment.waitUntilReplicated()
        let old = try await deployment.killMaster()
        let new = try await deployment.waitForMaster(notOn: old)
        let after = "127.0.0.1:\(new)"
        #expect(after != before)

        // serve learns of the move from the sentinels (+switch-master), or when its next
        // command finds the old master gone.
        #expect(try await eventually(every: .milliseconds(200)) {
            ready = (try? await Self.get(port, "/readyz", token: token)) ?? (0, "")
            return (try? ParsedJSON.parse(ready.body))?["redis"]?["master"]?.string == after
        }, "/readyz after the failover: \(ready)\nserve output:\n\(server.output)")
        let failoverAt = try #require(try ParsedJSON.parse(ready.body)["redis"]?["last_failover_at"]?.integer, "\(ready.body)")
        #expect(failoverAt >= killedAt - 1000, "the failover's time \(failoverAt) precedes the kill \(killedAt)")

        var metrics: (status: Int, body: String) = (0, "")
        #expect(try await eventually(every: .milliseconds(200)) {
            metrics = (try? await Self.get(port, "/metrics", token: token)) ?? (0, "")
            return metrics.body.contains(#"imagequeue_redis_master{address="\#(after)"} 1"#)
        }, "/metrics: \(metrics.body)")
        #expect(metrics.body.contains("imagequeue_redis_last_failover_timestamp_seconds "), "\(metrics.body)")
        #expect(!metrics.body.contains(#"address="\#(before)""#), "the old master is not listed: \(metrics.body)")

        // The worker's entry too, once it has registered again on the new master.
        #expect(try await eventually(every: .milliseconds(200)) {
            workers = (try? await cli.json(["workers", "--json"])) ?? .null
            let entry = workers.array?.first
            return entry?["redis_master"]?.string == after && entry?["redis_failover_at"]?.integer != nil
        }, "workers after the failover: \(workers)\nworker output:\n\(worker.output)")
        let text = try await cli.run(["workers"])
        #expect(text.stdout.contains("redis master \(after), failover at"), "\(text.stdout)")
    }
}
