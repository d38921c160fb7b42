import CurlHTTP
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The release executables against one TLS-only redis-server (`RedisServer.launchTLS`), each
/// child given the `IMAGEQUEUE_REDIS_TLS_*` settings of the world (the CA, and for mutual TLS
/// the client certificate and key) on top of QueueCLI's blanked environment.
struct TLSWorld: Sendable {
    let material: TLSMaterial
    /// The server, or nil for a cluster (whose URL is given).
    let server: RedisServer?
    let cli: QueueCLI
    /// `IMAGEQUEUE_REDIS_TLS_*` for every child.
    let tls: [String: String]

    /// A world on its own TLS server (`authClients` asks for client certificates).
    static func start(label: String, authClients: Bool = false, extraArguments: [String] = []) async throws -> TLSWorld {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, authClients: authClients, extraArguments: extraArguments)
        return try TLSWorld(material: material, server: server, url: server.tlsURL, label: label,
                            tls: Self.settings(material, clientCertificate: authClients))
    }

    init(material: TLSMaterial, server: RedisServer?, url: String, label: String, tls: [String: String]) throws {
        self.material = material
        self.server = server
        cli = try QueueCLI(redisURL: url, label: label)
        self.tls = tls
    }

    /// The CA file, and with `clientCertificate` the client certificate and its key.
    static func settings(_ material: TLSMaterial, clientCertificate: Bool) -> [String: String] {
        var settings = ["IMAGEQUEUE_REDIS_TLS_CA_FILE": material.caFile]
        if clientCertificate {
            settings["IMAGEQUEUE_REDIS_TLS_CERT_FILE"] = material.clientCertificate
            settings["IMAGEQUEUE_REDIS_TLS_KEY_FILE"] = material.clientKey
        }
        return settings
    }

    private func environment(_ extra: [String: String]) -> [String: String] {
        tls.merging(extra) { $1 }
    }

    /// `imagequeue ARGUMENTS --redis URL --prefix P`, to completion.
    func run(_ arguments: [String], environment extra: [String: String] = [:], timeout: Double = 60) async throws -> CommandResult {
        try await cli.run(arguments, environment: environment(extra), timeout: timeout)
    }

    /// A command that must succeed and print one JSON document.
    func json(_ arguments: [String]) async throws -> ParsedJSON {
        let result = try await run(arguments)
        guard result.status == 0 else {
            throw TestSetupError("imagequeue \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
        }
        return try ParsedJSON.parse(result.stdout)
    }

    /// `enqueue --json`; returns the job id.
    func enqueue(_ prompt: String, model: String = "flux", enhance: Bool = false) async throws -> String {
        let reply = try await json(["enqueue", "--json", "--model", model, "--user", "alice"] + (enhance ? [] : ["--no-enhance"]) + [prompt])
        guard let id = reply["id"]?.string else { throw TestSetupError("enqueue printed no id: \(reply)") }
        return id
    }

    func status(_ id: String) async throws -> ParsedJSON { try await json(["status", "--json", id]) }

    /// Polls `status --json` until the job is `wanted` (the deadline only stops a hang); returns the last status.
    @discardableResult
    func waitForStatus(_ id: String, _ wanted: String, timeout: Double = 60) async throws -> ParsedJSON {
        let deadline = ContinuousClock.now + .seconds(timeout)
        var status = try await status(id)
        while status["status"]?.string != wanted, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            status = try await self.status(id)
        }
        return status
    }

    /// `imagequeue worker ARGUMENTS --redis URL --prefix P` in the background.
    func startWorker(_ arguments: [String], environment extra: [String: String] = [:]) throws -> SpawnedProcess {
        try cli.startWorker(arguments, environment: environment(extra))
    }

    /// `imagequeue-worker ARGUMENTS --redis URL --prefix P` in the background.
    func startStandaloneWorker(_ arguments: [String], environment extra: [String: String] = [:]) throws -> SpawnedProcess {
        try cli.startStandaloneWorker(arguments, environment: environment(extra))
    }

    /// `imagequeue ARGUMENTS --redis URL --prefix P` in the background.
    func start(_ arguments: [String], environment extra: [String: String] = [:]) throws -> SpawnedProcess {
        try cli.start(arguments + ["--redis", cli.redisURL, "--prefix", cli.prefix], environment: environment(extra))
    }

    /// One redis-cli command over TLS against the world's server (with the client
    /// certificate when the world has one); its output, trimmed.
    func redis(_ arguments: [String]) async throws -> String {
        guard let server else { throw TestSetupError("a cluster world has no single server") }
        return try await redisCLI(port: server.port, material: material, arguments)
    }

    /// `imagequeue serve` on a free port with `IMAGEQUEUE_API_TOKEN`, up once `/healthz` answers 200.
    func startServer(token: String, environment extra: [String: String] = [:]) async throws -> ServeOverTLS {
        var printed = ""
        // A port picked free may be taken before serve binds it: then it exits, and another is tried.
        for _ in 0..<3 {
            let port = try RedisServer.freePort()
            let process = try start(["serve", "--host", "127.0.0.1", "--port", "\(port)"],
                                    environment: ["IMAGEQUEUE_API_TOKEN": token].merging(extra) { $1 })
            let server = ServeOverTLS(process: process, port: port, token: token)
            if try await eventually(within: .seconds(60), every: .milliseconds(100), { () async throws -> Bool in
                guard process.isRunning else { return true }
                return (try? await server.get("/healthz", authorized: false))?.status == 200
            }), process.isRunning { return server }
            printed = process.output
            process.send(SIGKILL)
            _ = try? await process.waitForExit(timeout: 10)
        }
        throw TestSetupError("imagequeue serve did not come up; it printed:\n\(printed)")
    }
}

/// Runs `redis-cli --tls` against 127.0.0.1:`port` with the test CA and the client
/// certificate (servers that do not ask for one ignore it); returns stdout, trimmed.
func redisCLI(port: Int, material: TLSMaterial, _ arguments: [String]) async throws -> String {
    let result = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"),
                                      ["redis-cli", "--tls", "--cacert", material.caFile, "--cert", material.clientCertificate,
                                       "--key", material.clientKey, "-h", "127.0.0.1", "-p", "\(port)"] + arguments, timeout: 30)
    guard result.status == 0 else {
        throw TestSetupError("redis-cli \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)")
    }
    return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A running `imagequeue serve`, spoken to over plain HTTP on 127.0.0.1.
final class ServeOverTLS: Sendable {
    let process: SpawnedProcess
    let port: Int
    let token: String
    private let http = HTTPClient()

    init(process: SpawnedProcess, port: Int, token: String) {
        self.process = process
        self.port = port
        self.token = token
    }

    /// `(status, body)` of one request; `json` is sent as an application/json body.
    func send(_ method: String, _ path: String, json: String? = nil, authorized: Bool = true) async throws -> (status: Int, body: String) {
        var headers: [(name: String, value: String)] = authorized ? [("Authorization", "Bearer \(token)")] : []
        if json != nil { headers.append(("Content-Type", "application/json")) }
        var request = HTTPRequest(method: method, url: "http://127.0.0.1:\(port)\(path)", headers: headers,
                                  body: json.map { Array($0.utf8) } ?? (method == "POST" ? [] : nil))
        request.timeout = .seconds(30)
        let response = try await http.send(request)
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    func get(_ path: String, authorized: Bool = true) async throws -> (status: Int, body: String) {
        try await send("GET", path, authorized: authorized)
    }

    /// SIGTERM, then waits for the exit.
    func stop() async throws -> SpawnedProcess.Termination {
        process.send(SIGTERM)
        return try await process.waitForExit(timeout: 30)
    }
}

/// Text only a crash or an uncaught error would print.
private let crashMarkers = ["Fatal error", "Stack dump", "Backtrace", "crashed", "Current stack trace"]

/// Expects a process to have stopped at start with exit 2 and exactly one stderr line that
/// contains every one of `texts`, nothing on stdout, no crash report. With `onlyLine` that
/// line is all of stderr (the CLI's contract); a service may have announced itself first
/// ("worker … serving flux …").
func expectSettingError(_ result: CommandResult, _ what: String, containing texts: [String], onlyLine: Bool = true,
                        sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(result.status == 2, "\(what): exit \(result.status), stderr: \(result.stderr)", sourceLocation: sourceLocation)
    let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
    let matching = lines.filter { line in texts.allSatisfy { line.contains($0) } }
    #expect(matching.count == 1, "\(what): one stderr line with \(texts) expected: \(result.stderr)", sourceLocation: sourceLocation)
    if onlyLine {
        #expect(lines.count == 1, "\(what): one stderr line expected: \(result.stderr)", sourceLocation: sourceLocation)
    }
    #expect(result.stdout.isEmpty, "\(what): stdout: \(result.stdout)", sourceLocation: sourceLocation)
    for marker in crashMarkers {
        #expect(!result.stderr.contains(marker), "\(what): stderr: \(result.stderr)", sourceLocation: sourceLocation)
    }
}

/// The 100 characters before `secret`'s first occurrence in `text`, the secret itself
/// masked: a failure says who printed it without printing it (or all of the text).
func context(of secret: String, in text: String) -> String {
    guard let range = text.range(of: secret) else { return "" }
    let before = text.index(range.lowerBound, offsetBy: -100, limitedBy: text.startIndex) ?? text.startIndex
    return "…\(text[before..<range.lowerBound])<the secret>"
}
