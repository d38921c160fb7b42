import CurlHTTP
import Foundation
import Synchronization
import TestSupport

/// The fake HTTP server (`Fixtures/http_fixture.py`, a Python stdlib `http.server`) on a
/// free 127.0.0.1 port, one process shared by every test of this target. It exits when
/// this process does (its stdin, a pipe from us, then closes).
final class HTTPFixture: @unchecked Sendable {
    // Safe to share: every stored property is a constant set in `init`; `process` and
    // `input` are only held so the child keeps running and keeps its stdin open.
    let port: Int
    private let process: Process
    private let input: Pipe

    private static let started: Result<HTTPFixture, any Error> = Result { try HTTPFixture() }

    /// The running fixture, started by the first caller (on a thread of its own).
    static func shared() async throws -> HTTPFixture {
        try await offPool { try started.get() }
    }

    /// `http://127.0.0.1:<port><pathAndQuery>`.
    func url(_ pathAndQuery: String) -> String {
        "http://127.0.0.1:\(port)\(pathAndQuery)"
    }

    private init() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/http_fixture.py")
        var failure: any Error = TestSetupError("http_fixture.py did not start")
        for _ in 0..<5 {
            let port = try RedisServer.freePort()
            do {
                (process, input) = try Self.launch(script: script, port: port)
                self.port = port
                return
            } catch {
                failure = error  // most likely the port was taken meanwhile: try another
            }
        }
        throw failure
    }

    /// Starts the script and blocks until it prints READY (call off the cooperative pool).
    private static func launch(script: URL, port: Int) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, String(port)]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var printed = Data()
        while !printed.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.readChunk()
            if chunk.isEmpty {
                process.waitUntilExit()
                throw TestSetupError("http_fixture.py exited (status \(process.terminationStatus)) on port \(port)")
            }
            printed.append(chunk)
        }
        guard String(decoding: printed, as: UTF8.self).hasPrefix("READY") else {
            throw TestSetupError("http_fixture.py printed \(String(decoding: printed, as: UTF8.self))")
        }
        return (process, input)
    }
}

/// What the fixture's /echo route saw of a request.
struct Echo: Decodable {
    let method: String
    let path: String
    /// The raw query string, exactly as it arrived.
    let query: String
    /// Header fields, names lowercased.
    let headers: [String: String]
    /// The body, base64.
    let body: String

    var bodyBytes: [UInt8] { Data(base64Encoded: body).map { [UInt8]($0) } ?? [] }

    init(_ response: HTTPResponse) throws {
        self = try JSONDecoder().decode(Echo.self, from: Data(response.body))
    }
}

/// The bytes the fixture's /stream and /fixed routes send: byte i is i % 251.
func fixturePattern(_ count: Int) -> [UInt8] {
    (0..<count).map { UInt8($0 % 251) }
}

/// A request id no other test uses, for /hold, /arrived and /release.
func uniqueHoldID(_ label: String) -> String {
    "\(label)-\(UInt64.random(in: 0...UInt64.max))"
}

/// Waits (without blocking a thread) until the fixture has received /hold with `id`.
func waitUntilArrived(_ id: String, fixture: HTTPFixture, client: HTTPClient) async throws {
    for _ in 0..<500 {
        let response = try await client.send(HTTPRequest(url: fixture.url("/arrived?id=\(id)")))
        if response.body == Array("yes".utf8) { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TestSetupError("the fixture never received /hold?id=\(id)")
}
