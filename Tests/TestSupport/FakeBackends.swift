import Foundation

/// `Tests/Fakes/fake_backends.py` running on a free loopback port: a real HTTP server that
/// plays Flux, SDXL, OpenRouter and Gemini, whose answers tests script and whose received
/// requests tests read back. See Tests/Fakes/README.md for the control API.
public final class FakeBackends: Sendable {
    private let server: FakeServerProcess

    /// Starts the fake and waits for its READY line.
    public static func start() async throws -> FakeBackends {
        FakeBackends(server: try await FakeServerProcess.start("fake_backends.py"))
    }

    private init(server: FakeServerProcess) {
        self.server = server
    }

    public var port: Int { server.port }
    /// `http://127.0.0.1:<port>`.
    public var baseURL: String { server.baseURL }
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
        try await server.post("/_control/script", ["service": service, "responses": responses])
    }

    /// Delays every request to a service.
    public func setDelay(_ service: String, milliseconds: Int) async throws {
        try await server.post("/_control/default_delay", ["service": service, "delay_ms": milliseconds])
    }

    /// Clears scripts, delays and the request log.
    public func reset() async throws {
        try await server.post("/_control/reset", [:])
    }

    /// The requests a service received, in arrival order (all services when nil).
    public func requests(_ service: String? = nil) async throws -> [[String: Any]] {
        try await server.list("/_control/requests" + (service.map { "?service=\($0)" } ?? ""))
    }
}
