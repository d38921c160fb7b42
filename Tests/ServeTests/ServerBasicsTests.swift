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
        let exited = try await eventually(timeout: 30) { !server.process.isRunning }
        #expect(exited, "still running 30 s after SIGTERM with a /v1/events client connected; output:\n\(server.process.output)")
        guard exited else { return }  // the SpawnedProcess kills it
        #expect(server.process.termination == .exited(0), "output:\n\(server.process.output)")
        // The client sees the stream end rather than hang.
        #expect(await stream.waitForEnd(timeout: 30) != nil, "the stream stayed open after the server stopped")
    }
}
