import CurlHTTP
import Logging
import Synchronization

/// Several URLs serving one model: jobs go round the members that answer; a member that
/// fails (unreachable, timing out, 5xx) is left out for a cooldown that doubles with each
/// failure (1 s up to 60 s), then tried again by the next job, and is back in the round once
/// it answers. A job whose member cannot be reached at all moves on to the next member at
/// once, without a retry's backoff. With every member out, the one that comes back first is
/// tried.
final class EndpointPool: ImageGenerator {
    struct Member: Sendable {
        let url: String
        let generator: any ImageGenerator
    }

    private struct State {
        var next = 0
        var downUntil: [ContinuousClock.Instant?]
        var failures: [Int]
    }

    let model: String
    let members: [Member]
    private let state: Mutex<State>
    private let logger: Logger

    init(model: String, members: [Member], logger: Logger) {
        self.model = model
        self.members = members
        self.logger = logger
        state = Mutex(State(downUntil: Array(repeating: nil, count: members.count), failures: Array(repeating: 0, count: members.count)))
    }

    /// The members' (they serve the same model with the same settings).
    func batchLimit(for model: String) -> Int { members.first?.generator.batchLimit(for: model) ?? 1 }

    func generate(_ request: GenerationRequest) async throws(GenerationError) -> [GeneratedImage] {
        var tried: Set<Int> = []
        while true {
            let index = pick(excluding: tried)
            tried.insert(index)
            do {
                let images = try await members[index].generator.generate(request)
                answered(index)
                return images
            } catch {
                if Task.isCancelled { throw error }
                switch error.kind {
                case .unreachable, .timeout, .serverError: failed(index, error)
                case .busy, .rejected, .invalidImage, .imageTooLarge, .storageFailed: answered(index)
                }
                guard error.kind == .unreachable, tried.count < members.count else { throw error }
            }
        }
    }

    /// The next member in the round that is in, else the one back soonest (never one in `tried`
    /// while another is left).
    private func pick(excluding tried: Set<Int>) -> Int {
        let now = ContinuousClock.now
        return state.withLock { state in
            let count = members.count
            for step in 0..<count {
                let index = (state.next + step) % count
                if !tried.contains(index), state.downUntil[index].map({ $0 <= now }) ?? true {
                    state.next = (index + 1) % count
                    return index
                }
            }
            let candidates = (0..<count).filter { !tried.contains($0) }
            return candidates.min { (state.downUntil[$0] ?? now) < (state.downUntil[$1] ?? now) } ?? 0
        }
    }

    private func answered(_ index: Int) {
        let wasDown = state.withLock { state in
            defer { state.downUntil[index] = nil; state.failures[index] = 0 }
            return state.failures[index] > 0
        }
        if wasDown {
            logger.notice("backend answers again; back in the pool", metadata: ["model": "\(model)", "backend.url": "\(shareableURL(members[index].url))"])
        }
    }

    private func failed(_ index: Int, _ error: GenerationError) {
        let cooldown = state.withLock { state -> Duration in
            state.failures[index] += 1
            let seconds = min(60, 1 << min(state.failures[index] - 1, 6))
            state.downUntil[index] = .now + .seconds(seconds)
            return .seconds(seconds)
        }
        logger.warning("backend failed; left out of the pool for a while", metadata: [
            "model": "\(model)", "backend.url": "\(shareableURL(members[index].url))",
            "error": "\(error)", "cooldown_s": "\(cooldown.components.seconds)"])
    }
}

/// Sends each job to its model's backend.
struct ModelRouter: ImageGenerator {
    let generators: [String: any ImageGenerator]

    func batchLimit(for model: String) -> Int { generators[model]?.batchLimit(for: model) ?? 1 }

    func generate(_ request: GenerationRequest) async throws(GenerationError) -> [GeneratedImage] {
        guard let generator = generators[request.model] else {
            throw GenerationError(.rejected, "no backend for model \(request.model)")
        }
        return try await generator.generate(request)
    }

    /// The generator for every model of `table`.
    static func make(_ table: ModelTable, http: HTTPClient, configuration: WorkerConfiguration, logger: Logger) -> ModelRouter {
        var generators: [String: any ImageGenerator] = [:]
        for spec in table.models {
            let call = BackendHTTP(http: http, timeout: spec.timeout ?? configuration.generationTimeout,
                                   connectTimeout: configuration.connectTimeout, maxBytes: configuration.maxImageBytes)
            let members = spec.urls.map { url in
                EndpointPool.Member(url: url, generator: backend(spec, url: url, call: call, configuration: configuration, logger: logger))
            }
            switch members.count {
            case 0: generators[spec.name] = backend(spec, url: "", call: call, configuration: configuration, logger: logger)
            case 1: generators[spec.name] = members[0].generator
            default: generators[spec.name] = EndpointPool(model: spec.name, members: members, logger: logger)
            }
        }
        return ModelRouter(generators: generators)
    }

    private static func backend(_ spec: ModelSpec, url: String, call: BackendHTTP, configuration: WorkerConfiguration,
                                logger: Logger) -> any ImageGenerator {
        switch spec.backend {
        case .fluxWorker: FluxWorkerBackend(call: call, url: url, params: spec.params)
        case .sdxlWorker: SDXLWorkerBackend(call: call, url: url, apiKey: spec.apiKey ?? "", params: spec.params)
        case .workersAI: WorkersAIBackend(call: call, url: url, apiKey: spec.apiKey ?? "", params: spec.params)
        case .openai: OpenAIImagesBackend(call: call, url: url, apiKey: spec.apiKey, model: spec.backendModel, params: spec.params)
        case .a1111: A1111Backend(call: call, url: url, model: spec.backendModel, params: spec.params)
        case .comfyui: ComfyUIBackend(call: call, url: url, workflow: spec.workflow ?? [:], promptNode: spec.promptNode ?? "",
                                      promptInput: spec.promptInput, params: spec.params, logger: logger)
        case .placeholder: PlaceholderGenerator(delay: configuration.placeholderDelay, size: configuration.placeholderSize)
        }
    }
}
