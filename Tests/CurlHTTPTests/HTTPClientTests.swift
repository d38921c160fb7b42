import CurlHTTP
import Testing

/// Requests and responses that arrive intact, against the fixture over real sockets.
@Suite struct HTTPClientTests {
    let client = HTTPClient()

    @Test func getSendsTheEncodedQueryUnchanged() async throws {
        let fixture = try await HTTPFixture.shared()
        let value = URLEncoding.queryValue("a b&c=d/é")
        let response = try await client.send(HTTPRequest(url: fixture.url("/echo?q=\(value)&n=2")))
        #expect(response.status == 200)
        let echo = try Echo(response)
        #expect(echo.method == "GET")
        #expect(echo.query == "q=a%20b%26c%3Dd%2F%C3%A9&n=2")
        #expect(echo.bodyBytes.isEmpty)
    }

    @Test func postSendsTheJSONBodyAndAuthorizationIntact() async throws {
        let fixture = try await HTTPFixture.shared()
        let json = #"{"prompt":"a red fox, 4k — \"cinematic\"","n":1}"#
        let request = HTTPRequest(method: "POST", url: fixture.url("/echo"), headers: [
            (name: "Authorization", value: "Bearer sk-test-0123456789"),
            (name: "Content-Type", value: "application/json"),
        ], body: Array(json.utf8))
        let response = try await client.send(request)
        #expect(response.status == 200)
        #expect(response.header("Content-Type") == "application/json")
        let echo = try Echo(response)
        #expect(echo.method == "POST")
        #expect(echo.bodyBytes == Array(json.utf8))
        #expect(echo.headers["authorization"] == "Bearer sk-test-0123456789")
        #expect(echo.headers["content-type"] == "application/json")
        #expect(echo.headers["content-length"] == String(json.utf8.count))
        #expect(echo.headers["expect"] == nil)
    }

    @Test func aBodyWithoutContentTypeIsNotLabelledAsAForm() async throws {
        let fixture = try await HTTPFixture.shared()
        let response = try await client.send(HTTPRequest(method: "POST", url: fixture.url("/echo"), body: [1, 2, 3]))
        let echo = try Echo(response)
        #expect(echo.headers["content-type"] == nil)
        #expect(echo.bodyBytes == [1, 2, 3])
    }

    @Test func otherMethodsAndEmptyHeaderValuesAreSent() async throws {
        let fixture = try await HTTPFixture.shared()
        let put = try Echo(try await client.send(HTTPRequest(method: "PUT", url: fixture.url("/echo"),
                                                             headers: [(name: "X-Empty", value: "")], body: Array("v".utf8))))
        #expect(put.method == "PUT")
        #expect(put.bodyBytes == Array("v".utf8))
        #expect(put.headers["x-empty"] == "")
        let delete = try Echo(try await client.send(HTTPRequest(method: "DELETE", url: fixture.url("/echo"))))
        #expect(delete.method == "DELETE")
        let emptyPost = try Echo(try await client.send(HTTPRequest(method: "POST", url: fixture.url("/echo"))))
        #expect(emptyPost.method == "POST")
        #expect(emptyPost.headers["content-length"] == "0")
    }

    @Test func nonSuccessStatusesAreReturnedWithTheirHeaders() async throws {
        let fixture = try await HTTPFixture.shared()
        let limited = try await client.send(HTTPRequest(url: fixture.url("/status?code=429&retry_after=7")))
        #expect(limited.status == 429)
        #expect(limited.header("Retry-After") == "7")
        #expect(limited.header("retry-after") == "7")
        #expect(limited.headers["retry-after"] == "7")
        #expect(limited.header("x-dup") == "two")  // the last of repeated fields wins
        #expect(limited.body == Array("status 429".utf8))
        let failed = try await client.send(HTTPRequest(method: "POST", url: fixture.url("/status?code=500"), body: []))
        #expect(failed.status == 500)
        #expect(failed.body == Array("status 500".utf8))
    }

    @Test func redirectsAreReturnedNotFollowed() async throws {
        let fixture = try await HTTPFixture.shared()
        let response = try await client.send(HTTPRequest(url: fixture.url("/redirect")))
        #expect(response.status == 302)
        #expect(response.header("Location") == "/echo")
    }

    @Test func headersOfAnInterimResponseAreDropped() async throws {
        let fixture = try await HTTPFixture.shared()
        let response = try await client.send(HTTPRequest(url: fixture.url("/interim")))
        #expect(response.status == 200)
        #expect(response.header("X-Final") == "yes")
        #expect(response.header("X-Interim") == nil)
        #expect(response.body == Array("final".utf8))
    }

    @Test func headIsNotHeldToTheBodyLimit() async throws {
        let fixture = try await HTTPFixture.shared()
        var request = HTTPRequest(method: "HEAD", url: fixture.url("/fixed?bytes=5000"))
        request.maxResponseBytes = 100
        let response = try await client.send(request)
        #expect(response.status == 200)
        #expect(response.header("content-length") == "5000")
        #expect(response.body.isEmpty)
    }

    /// Blocking transfers must not occupy the cooperative pool (2 threads here): with six
    /// requests held open by the server, further requests must still run, or the held
    /// ones would never be released and would end with 504.
    @Test func heldRequestsDoNotStarveOtherTasks() async throws {
        let fixture = try await HTTPFixture.shared()
        let ids = (0..<6).map { uniqueHoldID("held\($0)") }
        let client = self.client
        try await withThrowingTaskGroup(of: HTTPResponse.self) { group in
            for id in ids {
                group.addTask {
                    var request = HTTPRequest(url: fixture.url("/hold?id=\(id)&seconds=20"))
                    request.timeout = .seconds(30)
                    return try await client.send(request)
                }
            }
            for id in ids { try await waitUntilArrived(id, fixture: fixture, client: client) }
            for id in ids { _ = try await client.send(HTTPRequest(url: fixture.url("/release?id=\(id)"))) }
            var released = 0
            for try await response in group {
                #expect(response.status == 200)
                #expect(response.body == Array("released".utf8))
                released += 1
            }
            #expect(released == ids.count)
        }
    }

    @Test func responseHeaderLookupIgnoresCase() {
        let response = HTTPResponse(status: 200, headers: ["Retry-After": "3"])
        #expect(response.headers["retry-after"] == "3")
        #expect(response.header("RETRY-AFTER") == "3")
        #expect(response.header("missing") == nil)
    }
}
