// Types that hold API keys describe themselves without them, so no log line, error or
// `dump` (ServiceLifecycle names services by "\(service)") can print a key.

extension WorkerConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "WorkerConfiguration(backend: \(backend.rawValue), llm: \(llmProvider.rawValue), models: \(queue.models.joined(separator: ",")), keys: redacted)"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension ModelSpec: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "ModelSpec(\(name): \(backend.rawValue), urls: \(urls.count), key: \(apiKey == nil ? "none" : "redacted"))" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension SDXLWorkerBackend: CustomStringConvertible, CustomReflectable {
    var description: String { "SDXLWorkerBackend(key: redacted)" }
    var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension WorkersAIBackend: CustomStringConvertible, CustomReflectable {
    var description: String { "WorkersAIBackend(key: redacted)" }
    var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension OpenAIImagesBackend: CustomStringConvertible, CustomReflectable {
    var description: String { "OpenAIImagesBackend(key: redacted)" }
    var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension OpenRouterEnhancer: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "OpenRouterEnhancer(model: \(endpoint.model))" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension GeminiEnhancer: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "GeminiEnhancer(model: \(endpoint.model))" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension LLMEndpoint: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    var description: String { "LLMEndpoint(\(call.provider), model: \(model))" }
    var debugDescription: String { description }
    var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension ClaimLoops: CustomStringConvertible {
    var description: String { "ClaimLoops(worker: \(queue.workerID), models: \(models.joined(separator: ",")))" }
}

extension Maintenance: CustomStringConvertible {
    var description: String { "Maintenance(worker: \(workerID))" }
}

extension JobProcessor: CustomStringConvertible, CustomReflectable {
    var description: String { "JobProcessor(worker: \(queue.workerID))" }
    var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}
