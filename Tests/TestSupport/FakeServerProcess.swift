import CurlHTTP
import Foundation

/// One of the Python fakes in Tests/Fakes, running on a free loopback port, and the
/// `/_control` requests that `FakeBackends` and `FakeTelegram` send it.
final class FakeServerProcess: Sendable {
    /// The script's file name, for messages (`fake_backends.py`).
    let name: String
    let port: Int
    private let process: SpawnedProcess
    private let http = HTTPClient()

    /// Starts `Tests/Fakes/<script>` with `--port 0` and `arguments`, and waits for its
    /// `READY <port>` line. `environment` is added to the test process's (e.g. a secret the
    /// fake reads from a variable, so it is never on a command line).
    /// - Throws: `TestSetupError` (after killing it) when it ends, or says something else,
    ///   or says nothing within 30 s.
    static func start(_ script: String, arguments: [String] = [], environment: [String: String] = [:]) async throws -> FakeServerProcess {
        inProcessSetUp()
        let path = TestEnvironment.packageRoot.appendingPathComponent("Tests/Fakes/" + script).path
        // Started by SpawnedProcess: no inherited descriptors, killed when the tests exit.
        let process = try SpawnedProcess("/usr/bin/env", ["python3", path, "--port", "0"] + arguments,
                                         environment: ProcessInfo.processInfo.environment.merging(environment) { $1 })
        // The READY line is the only thing a fake writes on stdout; stderr may say more.
        let deadline = ContinuousClock.now + .seconds(30)
        while !process.stdout.contains("\n") {
            guard process.isRunning, ContinuousClock.now < deadline else {
                process.send(SIGKILL)
                throw TestSetupError("\(script) did not say READY: \(process.output)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let text = process.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("READY "), let port = Int(text.dropFirst(6)) else {
            process.send(SIGKILL)
            throw TestSetupError("\(script) said \(text)")
        }
        return FakeServerProcess(name: script, process: process, port: port)
    }

    private init(name: String, process: SpawnedProcess, port: Int) {
        self.name = name
        self.process = process
        self.port = port
    }

    deinit {
        process.send(SIGKILL)
    }

    /// `http://127.0.0.1:<port>`.
    var baseURL: String { "http://127.0.0.1:\(port)" }

    /// Sends a control request (a JSON body, or none) and returns the answer's body.
    /// - Throws: `TestSetupError` when the answer is not a 2xx.
    @discardableResult
    func control(_ method: String, _ path: String, body: Data?) async throws -> [UInt8] {
        var request = HTTPRequest(method: method, url: baseURL + path, headers: [("Content-Type", "application/json")],
                                  body: body.map { Array($0) })
        request.timeout = .seconds(10)
        let response = try await http.send(request)
        guard (200..<300).contains(response.status) else {
            throw TestSetupError("fake \(method) \(path) answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        }
        return response.body
    }

    /// Posts `fields` as a JSON object.
    @discardableResult
    func post(_ path: String, _ fields: [String: Any]) async throws -> [UInt8] {
        try await control("POST", path, body: try JSONSerialization.data(withJSONObject: fields))
    }

    /// GETs a control path whose answer is a JSON list of objects.
    func list(_ path: String) async throws -> [[String: Any]] {
        try await decoded(path, as: [[String: Any]].self, "a list")
    }

    /// GETs a control path whose answer is a JSON object.
    func object(_ path: String) async throws -> [String: Any] {
        try await decoded(path, as: [String: Any].self, "an object")
    }

    private func decoded<Value>(_ path: String, as type: Value.Type, _ what: String) async throws -> Value {
        let body = try await control("GET", path, body: nil)
        guard let value = try JSONSerialization.jsonObject(with: Data(body)) as? Value else {
            throw TestSetupError("\(name) \(path) is not \(what): \(String(decoding: body, as: UTF8.self))")
        }
        return value
    }
}
