// Types that hold API keys describe themselves without them, so no log line, error or
// `dump` (ServiceLifecycle names services by "\(service)") can print a key.

extension WorkerConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "WorkerConfiguration(backend: \(backend.rawValue), llm: \(llmProvider.rawValue), models: \(queue.models.joined(separator: ",")), keys: redacted)"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
}

extension HTTPImageGenerator: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "HTTPImageGenerator(flux: \(fluxURL != nil), sdxl: \(sdxlURL != nil))" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: [], displayStyle: .struct) }
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
