import CurlHTTP
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// One test's world: the built `imagequeue` binary, a Redis (the shared test server unless
/// given), a key prefix of its own and an API token. It starts `imagequeue serve` and
/// placeholder workers as real processes; nothing is mocked.
struct ServeFixture: Sendable {
    let binary: URL
    let redisURL: String
    let prefix: String
    /// The `IMAGEQUEUE_API_TOKEN` the servers it starts get.
    let token: String

    /// - Parameter redisURL: the server; the shared test server when nil.
    init(redisURL: String? = nil, label: String = "sv") throws {
        binary = try TestEnvironment.imagequeueBinary()
        self.redisURL = try redisURL ?? TestEnvironment.redisURL()
        prefix = TestEnvironment.uniquePrefix(label)
        token = "tok-" + (0..<4).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 36) }.joined()
    }

    /// The environment for `imagequeue` children (see TestEnvironment.imagequeueEnvironment).
    static func environment(_ extra: [String: String] = [:]) -> [String: String] {
        TestEnvironment.imagequeueEnvironment(extra)
    }

    /// Starts `imagequeue serve --host 127.0.0.1 --port <free> --redis URL --prefix P` with
    /// `IMAGEQUEUE_API_TOKEN` set, and waits until `/healthz` answers 200.
    /// - Throws: `TestSetupError` (with the server's output) when it does not come up.
    func startServer(protectReads: Bool = false, environment extra: [String: String] = [:]) async throws -> ServeProcess {
        var lastOutput = ""
        // A port picked free can be taken by another test's process before the server binds
        // it; the server then exits, and a new port is tried.
        for _ in 0..<3 {
            let port = try RedisServer.freePort()
            let arguments = ["serve", "--host", "127.0.0.1", "--port", "\(port)", "--redis", redisURL, "--prefix", prefix]
                + (protectReads ? ["--protect-reads"] : [])
            let process = try SpawnedProcess(binary.path, arguments,
                                             environment: Self.environment(["IMAGEQUEUE_API_TOKEN": token].merging(extra) { $1 }))
            let server = ServeProcess(process: process, port: port, token: token)
            if try await server.waitUntilHealthy() { return server }
            lastOutput = process.output
            process.send(SIGKILL)
            _ = try? await process.waitForExit(timeout: 10)
        }
        throw TestSetupError("imagequeue serve did not come up; it printed:\n\(lastOutput)")
    }

    /// Starts a placeholder-backend worker for `models` (`imagequeue worker --backend
    /// placeholder`), writing images under `outputDirectory()`.
    func startWorker(models: [String] = ["flux"], delaySeconds: Double? = nil, name: String = "w1",
                     arguments: [String] = [], environment extra: [String: String] = [:]) throws -> SpawnedProcess {
        var environment = extra
        if let delaySeconds { environment["IMAGEQUEUE_PLACEHOLDER_DELAY"] = "\(delaySeconds)" }
        return try SpawnedProcess(
            binary.path,
            ["worker", "--models", models.joined(separator: ","), "--backend", "placeholder",
             "--output-dir", outputDirectory(), "--id", "\(prefix)-\(name)"] + arguments
                + ["--redis", redisURL, "--prefix", prefix],
            environment: Self.environment(environment))
    }

    /// Starts `imagequeue worker ARGUMENTS --redis URL --prefix P` exactly as given.
    func startWorker(exactly arguments: [String], environment extra: [String: String] = [:]) throws -> SpawnedProcess {
        try SpawnedProcess(binary.path, ["worker"] + arguments + ["--redis", redisURL, "--prefix", prefix],
                           environment: Self.environment(extra))
    }

    /// Runs `imagequeue ARGUMENTS --redis URL --prefix P` to completion (the CLI, for comparisons).
    func run(_ arguments: [String]) async throws -> CommandResult {
        try await runProgram(binary, arguments + ["--redis", redisURL, "--prefix", prefix], environment: Self.environment())
    }

    /// A directory for the workers' images, under the system's temporary directory.
    func outputDirectory() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("imagequeue-\(prefix)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    /// Removes the workers' images.
    func removeOutputDirectory() {
        try? FileManager.default.removeItem(at: FileManager.default.temporaryDirectory.appendingPathComponent("imagequeue-\(prefix)"))
    }
}

/// Which credentials a request carries.
enum Auth: Sendable {
    /// No `Authorization` header.
    case none
    /// `Authorization: Bearer <the server's token>`.
    case token
    /// `Authorization: <exactly this value>`.
    case header(String)
}

/// A complete HTTP answer.
struct Reply: Sendable, CustomStringConvertible {
    let status: Int
    let headers: [String: String]
    let body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    /// The Content-Type without parameters, lowercased.
    var mediaType: String? {
        headers["content-type"].map { $0.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? "" }
    }
    func header(_ name: String) -> String? { headers[name.lowercased()] }
    func json() throws -> ParsedJSON { try ParsedJSON.parse(text) }
    /// `error.code` of a JSON error body.
    var errorCode: String? { (try? json())?["error"]?["code"]?.string }

    var description: String {
        "HTTP \(status) [\(headers["content-type"] ?? "no content type")] \(text.prefix(600).debugDescription)"
    }
}

/// A running `imagequeue serve`.
final class ServeProcess: Sendable {
    let process: SpawnedProcess
    let port: Int
    let token: String
    private let http = HTTPClient()

    init(process: SpawnedProcess, port: Int, token: String) {
        self.process = process
        self.port = port
        self.token = token
    }

    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Polls `/healthz` until 200; false when the process ended first or 60 s passed.
    func waitUntilHealthy() async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, process.isRunning {
            var request = HTTPRequest(url: baseURL + "/healthz")
            request.timeout = .seconds(5)
            if let reply = try? await http.send(request), reply.status == 200 { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    /// Sends a request. `json` is sent as the body with `Content-Type: application/json`
    /// unless `contentType` says otherwise.
    func send(_ method: String, _ path: String, auth: Auth = .token, json: String? = nil, body: [UInt8]? = nil,
              contentType: String? = nil, headers extra: [(name: String, value: String)] = [],
              timeout: Duration = .seconds(30)) async throws -> Reply {
        var headers: [(name: String, value: String)] = extra
        switch auth {
        case .none: break
        case .token: headers.append(("Authorization", "Bearer \(token)"))
        case .header(let value): headers.append(("Authorization", value))
        }
        var payload = body ?? json.map { Array($0.utf8) }
        // A POST without a body: an empty one with no Content-Type (HTTPClient would send
        // libcurl's default "application/x-www-form-urlencoded" for a nil body).
        if payload == nil, method == "POST", contentType == nil { payload = [] }
        if let type = contentType ?? (json != nil ? "application/json" : nil) { headers.append(("Content-Type", type)) }
        var request = HTTPRequest(method: method, url: baseURL + path, headers: headers, body: payload)
        request.timeout = timeout
        let response = try await http.send(request)
        return Reply(status: response.status, headers: response.headers, body: response.body)
    }

    func get(_ path: String, auth: Auth = .token, timeout: Duration = .seconds(30)) async throws -> Reply {
        try await send("GET", path, auth: auth, timeout: timeout)
    }

    /// `GET path` that must answer 200 with JSON.
    func json(_ path: String, auth: Auth = .token, sourceLocation: SourceLocation = #_sourceLocation) async throws -> ParsedJSON {
        let reply = try await get(path, auth: auth)
        try #require(reply.status == 200, "GET \(path): \(reply)", sourceLocation: sourceLocation)
        return try reply.json()
    }

    /// Enqueues through `POST /v1/jobs`; returns the job id.
    func enqueue(_ prompt: String, model: String = "flux", user: String = "alice", enhance: Bool = true,
                 sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let body = try jsonText(["model": model, "prompt": prompt, "user": user, "enhance": enhance])
        let reply = try await send("POST", "/v1/jobs", json: body)
        try #require(reply.status == 202, "POST /v1/jobs: \(reply)", sourceLocation: sourceLocation)
        return try #require(try reply.json()["id"]?.string, "no id in \(reply)", sourceLocation: sourceLocation)
    }

    /// Polls `GET /v1/jobs/{id}` until `condition` holds; returns the last status object
    /// either way (the deadline only keeps a broken run from hanging the suite).
    @discardableResult
    func waitForJob(_ id: String, timeout: Double = 30, until condition: (ParsedJSON) -> Bool) async throws -> ParsedJSON {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        var status = try await json("/v1/jobs/\(id)")
        while !condition(status), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            status = try await json("/v1/jobs/\(id)")
        }
        return status
    }

    /// Polls until the job's status is `wanted`.
    @discardableResult
    func waitForJob(_ id: String, status wanted: String, timeout: Double = 30) async throws -> ParsedJSON {
        try await waitForJob(id, timeout: timeout) { $0["status"]?.string == wanted }
    }

    /// Opens an event stream on `path` (curl, read as it comes).
    func stream(_ path: String, auth: Auth = .token) throws -> SSEStream {
        let header: String? = switch auth {
        case .none: nil
        case .token: "Bearer \(token)"
        case .header(let value): value
        }
        return try SSEStream(url: baseURL + path, authorization: header)
    }

    /// SIGTERM, then waits for the exit.
    @discardableResult
    func stop() async throws -> SpawnedProcess.Termination {
        process.send(SIGTERM)
        return try await process.waitForExit(timeout: 30)
    }
}

/// A JSON object's text.
func jsonText(_ object: [String: Any]) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
}

/// Checks a JSON error answer: the status, a JSON content type, and
/// `{"error": {"code": <code>, "message": <one non-empty line>}}`.
func expectError(_ reply: Reply, _ status: Int, _ code: String, _ context: String = "",
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(reply.status == status, "\(context): \(reply)", sourceLocation: sourceLocation)
    #expect(reply.mediaType == "application/json", "\(context): \(reply)", sourceLocation: sourceLocation)
    guard let body = try? reply.json(), let error = body["error"] else {
        Issue.record("\(context): not a JSON error object: \(reply)", sourceLocation: sourceLocation)
        return
    }
    #expect(error["code"]?.string == code, "\(context): \(reply)", sourceLocation: sourceLocation)
    let message = error["message"]?.string ?? ""
    #expect(!message.isEmpty && !message.contains("\n"), "\(context): message must be one non-empty line: \(reply)",
            sourceLocation: sourceLocation)
}

