import CurlHTTP
import Foundation

/// `Tests/Fakes/fake_backends.py` running on a free loopback port: a real HTTP server that
/// plays Flux, SDXL, OpenRouter and Gemini, whose answers tests script and whose received
/// requests tests read back. See Tests/Fakes/README.md for the control API.
public final class FakeBackends: @unchecked Sendable {
    // Safe to share: every field is set once in init.
    public let port: Int
    private let process: SpawnedProcess
    private let http = HTTPClient()

    /// Starts the fake and waits for its READY line.
    public static func start() async throws -> FakeBackends {
        let script = TestEnvironment.packageRoot.appendingPathComponent("Tests/Fakes/fake_backends.py")
        // Started by SpawnedProcess: no inherited descriptors, killed when the tests exit.
        let process = try SpawnedProcess("/usr/bin/env", ["python3", script.path, "--port", "0"],
                                         environment: ProcessInfo.processInfo.environment)
        guard await process.waitForOutput(containing: "\n") else {
            throw TestSetupError("fake_backends.py exited before READY: \(process.output)")
        }
        let text = process.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard text.hasPrefix("READY "), let port = Int(text.dropFirst(6)) else {
            throw TestSetupError("fake_backends.py said \(text)")
        }
        return FakeBackends(process: process, port: port)
    }

    private init(process: SpawnedProcess, port: Int) {
        self.process = process
        self.port = port
    }

    deinit {
        process.send(SIGKILL)
    }

    /// `http://127.0.0.1:<port>`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }
    /// The Flux endpoint (`FLUX_WORKER_URL`).
    public var fluxURL: String { baseURL + "/flux" }
    /// The SDXL endpoint (`SDXL_WORKER_URL`).
    public var sdxlURL: String { baseURL + "/sdxl" }
    /// `OPENROUTER_BASE_URL`.
    public var openRouterBaseURL: String { baseURL + "/openrouter" }
    /// `GEMINI_BASE_URL`.
    public var geminiBaseURL: String { baseURL + "/gemini" }

    /// Environment variables pointing a worker at this fake.
    public func environment(sdxlKey: String = "sdxl-test-key", llm: String = "none") -> [String: String] {
        ["FLUX_WORKER_URL": fluxURL, "SDXL_WORKER_URL": sdxlURL, "SDXL_API_KEY": sdxlKey, "LLM_PROVIDER": llm,
         "OPENROUTER_BASE_URL": openRouterBaseURL, "OPENROUTER_API_KEY": "openrouter-test-key",
         "GEMINI_BASE_URL": geminiBaseURL, "GEMINI_API_KEY": "gemini-test-key"]
    }

    /// Queues scripted responses for a service (`flux`, `sdxl`, `openrouter`, `gemini`);
    /// each is a JSON object of the README's RESPONSE fields.
    public func script(_ service: String, _ responses: [[String: Any]]) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["service": service, "responses": responses])
        try await control("POST", "/_control/script", body: body)
    }

    /// Delays every request to a service.
    public func setDelay(_ service: String, milliseconds: Int) async throws {
        let body = try JSONSerialization.data(withJSONObject: ["service": service, "delay_ms": milliseconds])
        try await control("POST", "/_control/default_delay", body: body)
    }

    /// Clears scripts, delays and the request log.
    public func reset() async throws {
        try await control("POST", "/_control/reset", body: Data("{}".utf8))
    }

    /// The requests a service received, in arrival order (all services when nil).
    public func requests(_ service: String? = nil) async throws -> [[String: Any]] {
        let path = "/_control/requests" + (service.map { "?service=\($0)" } ?? "")
        let body = try await control("GET", path, body: nil)
        return (try JSONSerialization.jsonObject(with: Data(body)) as? [[String: Any]]) ?? []
    }

    @discardableResult
    private func control(_ method: String, _ path: String, body: Data?) async throws -> [UInt8] {
        var request = HTTPRequest(method: method, url: baseURL + path, headers: [("Content-Type", "application/json")],
                                  body: body.map { Array($0) })
        request.timeout = .seconds(10)
        let response = try await http.send(request)
        guard (200..<300).contains(response.status) else {
            throw TestSetupError("fake \(method) \(path) answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
        }
        return response.body
    }
}
