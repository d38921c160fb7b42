import CurlHTTP
import Testing
import TestSupport

/// Failures: their kinds, their promptness where that is the behaviour, and their messages.
@Suite struct HTTPClientFailureTests {
    let client = HTTPClient()

    @Test func aBodySlowerThanTheTimeoutTimesOut() async throws {
        let fixture = try await HTTPFixture.shared()
        let id = uniqueHoldID("timeout")
        var request = HTTPRequest(url: fixture.url("/hold?id=\(id)&seconds=30"))
        request.timeout = .seconds(1)
        let start = ContinuousClock.now
        let error = await #expect(throws: HTTPError.self) { try await client.send(request) }
        #expect(error?.kind == .timeout)
        #expect(ContinuousClock.now - start < .seconds(10))
        _ = try await client.send(HTTPRequest(url: fixture.url("/release?id=\(id)")))
    }

    @Test func nothingListeningIsAConnectionFailure() async throws {
        let port = try await offPool { try RedisServer.freePort() }
        let error = await #expect(throws: HTTPError.self) {
            try await client.send(HTTPRequest(url: "http://127.0.0.1:\(port)/v1/generate"))
        }
        #expect(error?.kind == .connectionFailed)
        #expect(error?.message.contains("http://127.0.0.1:\(port)/v1/generate") == true)
    }

    @Test func cancellingTheTaskAbortsASlowRequestQuickly() async throws {
        let fixture = try await HTTPFixture.shared()
        let id = uniqueHoldID("cancel")
        let client = self.client
        let task = Task {
            var request = HTTPRequest(url: fixture.url("/hold?id=\(id)&seconds=30"))
            request.timeout = .seconds(60)
            return try await client.send(request)
        }
        try await waitUntilArrived(id, fixture: fixture, client: client)
        let start = ContinuousClock.now
        task.cancel()
        let result = await task.result
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect((result.failure as? HTTPError)?.kind == .cancelled)
        _ = try await client.send(HTTPRequest(url: fixture.url("/release?id=\(id)")))
    }

    @Test func anAlreadyCancelledTaskSendsNothing() async throws {
        let fixture = try await HTTPFixture.shared()
        let id = uniqueHoldID("precancelled")
        let client = self.client
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.send(HTTPRequest(url: fixture.url("/hold?id=\(id)&seconds=30")))
        }
        let result = await task.result
        #expect((result.failure as? HTTPError)?.kind == .cancelled)
        let arrived = try await client.send(HTTPRequest(url: fixture.url("/arrived?id=\(id)")))
        #expect(arrived.body == Array("no".utf8))
    }

    @Test func errorMessagesHoldNoSecrets() async throws {
        let fixture = try await HTTPFixture.shared()
        let refusedPort = try await offPool { try RedisServer.freePort() }
        let secrets = ["SECRET123", "SECRET456", "SECRET789", "PASSWORD000", "SECRETBODY", "123456789:AAsecretToken"]
        let headers: [(name: String, value: String)] = [
            (name: "Authorization", value: "Bearer SECRET456"),
            (name: "x-goog-api-key", value: "SECRET789"),
        ]
        let holdID = uniqueHoldID("secrets")
        var timingOut = HTTPRequest(method: "POST", url: fixture.url("/hold?id=\(holdID)&seconds=30&key=SECRET123"),
                                    headers: headers, body: Array("SECRETBODY".utf8))
        timingOut.timeout = .milliseconds(500)
        var tooLarge = HTTPRequest(url: fixture.url("/stream?bytes=5000&key=SECRET123"), headers: headers)
        tooLarge.maxResponseBytes = 1000
        let requests = [
            HTTPRequest(method: "POST", url: "http://user:PASSWORD000@127.0.0.1:\(refusedPort)/v1/models/x:generate?key=SECRET123#SECRET456",
                        headers: headers, body: Array("SECRETBODY".utf8)),
            HTTPRequest(url: "http://127.0.0.1:\(refusedPort)/bot123456789:AAsecretToken/sendMessage?chat_id=1", headers: headers),
            timingOut,
            tooLarge,
            HTTPRequest(url: "not a url?key=SECRET123", headers: headers),
            HTTPRequest(url: "ftp://user:PASSWORD000@127.0.0.1/file?key=SECRET123", headers: headers),
            HTTPRequest(url: fixture.url("/echo?key=SECRET123"), headers: headers + [(name: "X-Bad", value: "SECRET456\r\nInjected: 1")]),
        ]
        var kinds: [HTTPError.Kind] = []
        for request in requests {
            let error = await #expect(throws: HTTPError.self) { try await client.send(request) }
            guard let error else { continue }
            kinds.append(error.kind)
            for secret in secrets {
                #expect(!error.message.contains(secret), "\(error.message)")
                #expect(!error.description.contains(secret), "\(error.description)")
            }
            var dumped = ""
            dump(request, to: &dumped)
            for shown in [request.description, request.debugDescription, dumped] {
                #expect(!shown.contains("SECRET") && !shown.contains("PASSWORD"), "\(shown)")
            }
        }
        #expect(kinds == [.connectionFailed, .connectionFailed, .timeout, .bodyTooLarge, .invalidURL, .invalidURL, .protocolError])
        _ = try await client.send(HTTPRequest(url: fixture.url("/release?id=\(holdID)")))
    }

    @Test func messagesShowSchemeHostPortAndPath() async throws {
        let port = try await offPool { try RedisServer.freePort() }
        let error = await #expect(throws: HTTPError.self) {
            try await client.send(HTTPRequest(url: "http://u:p@127.0.0.1:\(port)/bot42:xyz/sendPhoto?key=k"))
        }
        #expect(error?.message.hasPrefix("GET http://127.0.0.1:\(port)/bot<redacted>/sendPhoto:") == true, "\(error?.message ?? "")")
    }

    @Test func malformedURLsAndMethodsAreRefused() async throws {
        for url in ["", "127.0.0.1/no-scheme", "file:///etc/passwd", "http://exa mple.com/"] {
            let error = await #expect(throws: HTTPError.self, "\(url)") { try await client.send(HTTPRequest(url: url)) }
            #expect(error?.kind == .invalidURL, "\(url)")
        }
        for request in [HTTPRequest(method: "GET /x HTTP/1.1\r\n", url: "http://127.0.0.1/"),
                        HTTPRequest(method: "HEAD", url: "http://127.0.0.1/", body: [1]),
                        HTTPRequest(url: "http://127.0.0.1/", headers: [(name: "Bad Name", value: "x")])] {
            let error = await #expect(throws: HTTPError.self, "\(request)") { try await client.send(request) }
            #expect(error?.kind == .protocolError, "\(request)")
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
