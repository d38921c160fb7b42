import Foundation

/// `Tests/Fakes/fake_backends.py` running on a free loopback port: a real HTTP server that
/// plays Flux, SDXL, OpenRouter, Gemini, Workers AI, A1111, ComfyUI and OpenAI images, whose
/// answers tests script and whose received requests tests read back. See Tests/Fakes/README.md
/// for the control API.
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
    /// The AUTOMATIC1111 / Forge web UI base (`…/sdapi/v1/txt2img` is under it).
    public var a1111URL: String { baseURL + "/a1111" }
    /// The ComfyUI server base (`…/prompt`, `…/ws`, `…/history/<id>`, `…/view` are under it).
    public var comfyUIURL: String { baseURL + "/comfyui" }
    /// The OpenAI-compatible `/v1` base; a client appends `/images/generations`.
    public var openAIURL: String { baseURL + "/openai/v1" }
    /// The Cloudflare API base, as `https://api.cloudflare.com/client/v4` would be.
    public var workersAIBaseURL: String { baseURL + "/workersai/client/v4" }

    /// The Workers AI run URL of a model (e.g. `@cf/black-forest-labs/flux-1-schnell`) in the
    /// account `test-account`. Models whose id contains `flux` answer JSON, others a PNG.
    public func workersAIURL(model: String, account: String = "test-account") -> String {
        workersAIBaseURL + "/accounts/\(account)/ai/run/" + model
    }

    /// Environment variables pointing a worker at this fake.
    public func environment(sdxlKey: String = "sdxl-test-key", llm: String = "none") -> [String: String] {
        ["FLUX_WORKER_URL": fluxURL, "SDXL_WORKER_URL": sdxlURL, "SDXL_API_KEY": sdxlKey, "LLM_PROVIDER": llm,
         "OPENROUTER_BASE_URL": openRouterBaseURL, "OPENROUTER_API_KEY": "openrouter-test-key",
         "GEMINI_BASE_URL": geminiBaseURL, "GEMINI_API_KEY": "gemini-test-key"]
    }

    /// Queues scripted responses for a service (`flux`, `sdxl`, `openrouter`, `gemini`,
    /// `workersai`, `a1111`, `comfyui`, `openai`); each is a JSON object of the README's
    /// RESPONSE fields.
    public func script(_ service: String, _ responses: [[String: Any]]) async throws {
        try await server.post("/_control/script", ["service": service, "responses": responses])
    }

    /// Delays every request to a service.
    public func setDelay(_ service: String, milliseconds: Int) async throws {
        try await server.post("/_control/default_delay", ["service": service, "delay_ms": milliseconds])
    }

    /// Sets how long the renders of `a1111` or `comfyui` take and in how many progress steps,
    /// until the next `reset()` (defaults 600 ms, 6 steps). A nil argument keeps its setting.
    public func setRender(service: String, renderMs: Int? = nil, steps: Int? = nil) async throws {
        var fields: [String: Any] = ["service": service]
        if let renderMs { fields["render_ms"] = renderMs }
        if let steps { fields["steps"] = steps }
        try await server.post("/_control/render", fields)
    }

    /// The renders of `a1111` or `comfyui` so far, in start order: `id`, `prompt`, `started_ms`,
    /// `ended_ms` (`NSNull` while running), `interrupted`, `status`, `steps`, `steps_done`, ...
    public func renders(service: String) async throws -> [[String: Any]] {
        try await server.list("/_control/renders?service=\(service)")
    }

    /// Clears scripts, delays, render settings, renders and the request log.
    public func reset() async throws {
        try await server.post("/_control/reset", [:])
    }

    /// The requests a service received, in arrival order (all services when nil).
    public func requests(_ service: String? = nil) async throws -> [[String: Any]] {
        try await server.list("/_control/requests" + (service.map { "?service=\($0)" } ?? ""))
    }
}
