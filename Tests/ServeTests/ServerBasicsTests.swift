import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Starting and stopping `imagequeue serve`, and the routes that need no Redis data.
@Suite("serve: start, health, page")
struct ServerBasicsTests {
    @Test("without IMAGEQUEUE_API_TOKEN the server refuses to start (exit 2) and says why")
    func refusesToStartWithoutToken() async throws {
        let fixture = try ServeFixture()
        let port = try RedisServer.freePort()
        let process = try SpawnedProcess(fixture.binary.path,
                                         ["serve", "--host", "127.0.0.1", "--port", "\(port)", "--redis", fixture.redisURL,
                                          "--prefix", fixture.prefix],
                                         environment: ServeFixture.environment())
        let ended = try await process.waitForExit()
        #expect(ended == .exited(2), "output:\n\(process.output)")
        #expect(process.output.contains("IMAGEQUEUE_API_TOKEN"), "output:\n\(process.output)")
    }

    @Test("/healthz and /readyz answer JSON without a token; / serves a self-contained HTML page")
    func healthReadinessAndPage() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()

        let health = try await server.get("/healthz", auth: .none)
        #expect(health.status == 200, "\(health)")
        #expect(health.mediaType == "application/json", "\(health)")
        #expect(try health.json() == .object(["status": .string("ok")]), "\(health)")

        let ready = try await server.get("/readyz", auth: .none)
        #expect(ready.status == 200, "\(ready)")
        #expect(ready.mediaType == "application/json", "\(ready)")
        #expect(try ready.json() == .object(["status": .string("ready")]), "\(ready)")

        let page = try await server.get("/", auth: .none)
        #expect(page.status == 200, "\(page)")
        #expect(page.mediaType == "text/html", "\(page)")
        let html = page.text
        #expect(html.lowercased().contains("<html"), "not an HTML document: \(page)")
        // The page gets its data from the API.
        #expect(html.contains("/v1/"), "the page never calls the API")
        // Self-contained: no scripts, styles, images or fonts from elsewhere.
        let external = try Regex(#"(?i)(\b(src|href)\s*=\s*["']?\s*(https?:)?//)|(url\(\s*["']?\s*(https?:)?//)|(@import)"#)
        let matches = html.matches(of: external).map { String(html[$0.range]) }
        #expect(matches.isEmpty, "the page loads external resources: \(matches)")

        #expect(try await server.stop() == .exited(0), "output:\n\(server.process.output)")
    }

    @Test("the dashboard's files are served byte for byte, with their types, a validator and a policy allowing this origin only")
    func dashboardFilesAreServedAsTheyAre() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let directory = TestEnvironment.packageRoot.appendingPathComponent("Sources/ImageQueueServer/Dashboard")
        let files = ["index.html": ("/", "text/html"), "app.css": ("/dashboard/app.css", "text/css"),
                     "app.js": ("/dashboard/app.js", "text/javascript")]
        let onDisk = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { !$0.hasPrefix(".") }
        #expect(Set(onDisk) == Set(files.keys), "every file of Dashboard/ has a route here")
        for (file, (path, type)) in files {
            let reply = try await server.get(path, auth: .none)
            #expect(reply.status == 200, "\(path): \(reply)")
            #expect(reply.mediaType == type, "\(path): \(reply)")
            #expect(reply.body == Array(try Data(contentsOf: directory.appendingPathComponent(file))), "\(path) is \(file) as it is")
            #expect(reply.header("X-Content-Type-Options") == "nosniff", "\(path)")
            let etag = try #require(reply.header("ETag"), "\(path) has no ETag")
            let again = try await server.send("GET", path, auth: .none, headers: [("If-None-Match", etag)])
            #expect(again.status == 304, "\(path) with its own ETag: \(again)")
            #expect(again.body.isEmpty, "\(path): a 304 has no body")
            let other = try await server.send("GET", path, auth: .none, headers: [("If-None-Match", "\"other\"")])
            #expect(other.status == 200, "\(path) with another ETag: \(other)")
        }
        let page = try await server.get("/", auth: .none)
        let policy = try #require(page.header("Content-Security-Policy"), "the page has no Content-Security-Policy")
        // Thumbnails are fetched with the token and shown as blob: URLs.
        for directive in ["default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:", "frame-ancestors 'none'"] {
            #expect(policy.contains(directive), "\(directive) in \(policy)")
        }
        #expect(!page.text.contains("<style"), "no inline style sheet")
        #expect(!page.text.contains("<script>"), "no inline script")
        #expect(try await server.stop() == .exited(0), "output:\n\(server.process.output)")
    }

    @Test("node --check accepts the dashboard's script")
    func dashboardScriptParses() async throws {
        let script = TestEnvironment.packageRoot.appendingPathComponent("Sources/ImageQueueServer/Dashboard/app.js").path
        let node = try #require(["/usr/bin/node", "/usr/bin/nodejs", "/usr/local/bin/node"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }, "no node: ops/install-deps.sh --tests installs Debian's nodejs")
        let check = try SpawnedProcess(node, ["--check", script], environment: ProcessInfo.processInfo.environment)
        let ended = try await check.waitForExit()
        #expect(ended == .exited(0), "node --check app.js:\n\(check.output)")
    }

    @Test("an unknown route is a 404 with a JSON error body (errors are always JSON)")
    func unknownRouteIsJSON() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let reply = try await server.get("/v1/no-such-route")
        #expect(reply.status == 404, "\(reply)")
        #expect(reply.mediaType == "application/json", "\(reply)")
        #expect(reply.errorCode != nil, "not a JSON error object: \(reply)")
    }

    @Test("SIGTERM stops the server even while an endless /v1/events stream is open")
    func stopsWithOpenStream() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let stream = try server.stream("/v1/events")
        #expect(await stream.waitForHead() == 200, "stream output: \(stream.process.output)")
        server.process.send(SIGTERM)
        let exited = try await eventually(within: .seconds(30), every: .milliseconds(100)) { !server.process.isRunning }
        #expect(exited, "still running 30 s after SIGTERM with a /v1/events client connected; output:\n\(server.process.output)")
        guard exited else { return }  // the SpawnedProcess kills it
        #expect(server.process.termination == .exited(0), "output:\n\(server.process.output)")
        // The client sees the stream end rather than hang.
        #expect(await stream.waitForEnd(timeout: 30) != nil, "the stream stayed open after the server stopped")
    }
}
