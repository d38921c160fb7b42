import CurlHTTP
import FoundationEssentials
import ImageQueue

/// What enhancement produced: the prompt to generate with, and how it came about.
public struct Enhancement: Sendable, Equatable {
    /// The prompt to send to the image model.
    public var prompt: String
    /// Which enhancer answered (`openrouter`, `gemini`, `placeholder`, `none`).
    public var provider: String
    /// Whether the original prompt is used because enhancement failed.
    public var fellBack: Bool
    /// Why it fell back, for the status event.
    public var reason: String?

    /// The event detail describing this enhancement.
    var eventDetail: JSONValue {
        var object: [String: JSONValue] = ["provider": .string(provider), "fallback": .bool(fellBack)]
        if let reason { object["reason"] = .string(reason) }
        return .object(object)
    }
}

/// Improves a user's prompt for an image model. Never throws: on any failure it returns
/// the original prompt and says why.
public protocol PromptEnhancer: Sendable {
    /// Enhances `prompt`.
    func enhance(_ prompt: String) async -> Enhancement
}

/// The instruction every LLM enhancer sends with the user's prompt.
let enhancementInstruction = """
    You rewrite prompts for an AI image generator. Make the user's prompt vivid and specific: \
    subject, setting, composition, lighting, style, mood. Keep the user's intent and language. \
    Answer with the improved prompt only, on one line, without quotes, labels or explanations.
    """

/// Shared plumbing of the HTTP enhancers: call, clean, fall back.
struct LLMCall: Sendable {
    let http: HTTPClient
    let timeout: Duration
    let connectTimeout: Duration
    let maxLength: Int
    let provider: String

    func run(_ prompt: String, request: HTTPRequest, extract: @Sendable ([String: JSONValue]) -> String?) async -> Enhancement {
        func fallback(_ reason: String) -> Enhancement {
            Enhancement(prompt: prompt, provider: provider, fellBack: true, reason: reason)
        }
        var request = request
        request.timeout = timeout
        request.connectTimeout = connectTimeout
        request.maxResponseBytes = 1024 * 1024
        let response: HTTPResponse
        do {
            response = try await http.send(request)
        } catch {
            switch error.kind {
            case .timeout: return fallback("the \(provider) enhancer did not answer within \(timeout.seconds) s")
            case .cancelled: return fallback("enhancement was cancelled")
            default: return fallback("the \(provider) enhancer could not be reached (\(error.kind.rawValue))")
            }
        }
        guard (200..<300).contains(response.status) else {
            return fallback("the \(provider) enhancer answered HTTP \(response.status)")
        }
        guard let object = try? JSONDecoder().decode([String: JSONValue].self, from: Data(response.body)),
              let text = extract(object) else {
            return fallback("the \(provider) enhancer's answer was not in the expected format")
        }
        guard let cleaned = PromptCleaner.clean(text, maxLength: maxLength) else {
            return fallback("the \(provider) enhancer's answer was empty or unusable")
        }
        return Enhancement(prompt: cleaned, provider: provider, fellBack: false, reason: nil)
    }
}

/// Where and how an LLM enhancer calls its service.
struct LLMEndpoint: Sendable {
    let call: LLMCall
    let baseURL: String
    let apiKey: String
    let model: String

    init(provider: String, http: HTTPClient, baseURL: String, apiKey: String, model: String, timeout: Duration,
         connectTimeout: Duration, maxLength: Int) {
        call = LLMCall(http: http, timeout: timeout, connectTimeout: connectTimeout, maxLength: maxLength, provider: provider)
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.model = model
    }
}

/// OpenRouter's OpenAI-style chat completions: `POST {base}/chat/completions`.
public struct OpenRouterEnhancer: PromptEnhancer {
    let endpoint: LLMEndpoint

    /// Creates the enhancer.
    public init(http: HTTPClient, baseURL: String, apiKey: String, model: String, timeout: Duration,
                connectTimeout: Duration = .seconds(10), maxLength: Int) {
        endpoint = LLMEndpoint(provider: "openrouter", http: http, baseURL: baseURL, apiKey: apiKey, model: model,
                               timeout: timeout, connectTimeout: connectTimeout, maxLength: maxLength)
    }

    public func enhance(_ prompt: String) async -> Enhancement {
        let body: JSONValue = .object([
            "model": .string(endpoint.model),
            "messages": .array([
                .object(["role": .string("system"), "content": .string(enhancementInstruction)]),
                .object(["role": .string("user"), "content": .string(prompt)]),
            ]),
            "max_tokens": .int(400),
            "temperature": .double(0.7),
        ])
        let request = HTTPRequest(method: "POST", url: endpoint.baseURL + "/chat/completions",
                                  headers: [("Content-Type", "application/json"), ("Authorization", "Bearer \(endpoint.apiKey)")],
                                  body: (try? JSONEncoder().encode(body)).map { Array($0) })
        return await endpoint.call.run(prompt, request: request) { object in
            guard case .array(let choices)? = object["choices"], let first = choices.first?.objectValue,
                  let message = first["message"]?.objectValue else { return nil }
            return message["content"]?.stringValue
        }
    }
}

/// Gemini's `generateContent`: `POST {base}/v1beta/models/{model}:generateContent`, the key
/// in the `x-goog-api-key` header (never in the URL, so it cannot reach a log).
public struct GeminiEnhancer: PromptEnhancer {
    let endpoint: LLMEndpoint

    /// Creates the enhancer.
    public init(http: HTTPClient, baseURL: String, apiKey: String, model: String, timeout: Duration,
                connectTimeout: Duration = .seconds(10), maxLength: Int) {
        endpoint = LLMEndpoint(provider: "gemini", http: http, baseURL: baseURL, apiKey: apiKey, model: model,
                               timeout: timeout, connectTimeout: connectTimeout, maxLength: maxLength)
    }

    public func enhance(_ prompt: String) async -> Enhancement {
        let body: JSONValue = .object([
            "contents": .array([.object([
                "role": .string("user"),
                "parts": .array([.object(["text": .string(enhancementInstruction + "\n\nPrompt: " + prompt)])]),
            ])]),
            "generationConfig": .object(["maxOutputTokens": .int(400), "temperature": .double(0.7)]),
        ])
        let request = HTTPRequest(method: "POST", url: "\(endpoint.baseURL)/v1beta/models/\(endpoint.model):generateContent",
                                  headers: [("Content-Type", "application/json"), ("x-goog-api-key", endpoint.apiKey)],
                                  body: (try? JSONEncoder().encode(body)).map { Array($0) })
        return await endpoint.call.run(prompt, request: request) { object in
            guard case .array(let candidates)? = object["candidates"], let first = candidates.first?.objectValue,
                  let content = first["content"]?.objectValue, case .array(let parts)? = content["parts"] else { return nil }
            let text = parts.compactMap { $0.objectValue?["text"]?.stringValue }.joined()
            return text.isEmpty ? nil : text
        }
    }
}

/// The offline enhancer of the placeholder backend: a fixed, labelled rewrite.
public struct PlaceholderEnhancer: PromptEnhancer {
    let maxLength: Int

    /// Creates the enhancer.
    public init(maxLength: Int) { self.maxLength = maxLength }

    public func enhance(_ prompt: String) async -> Enhancement {
        let text = PromptCleaner.truncate(prompt.trimmingWhitespace() + ", detailed, soft natural light, balanced composition",
                                          to: maxLength)
        return Enhancement(prompt: text, provider: "placeholder", fellBack: false, reason: nil)
    }
}

/// No enhancement: the prompt is used as written.
public struct NoEnhancer: PromptEnhancer {
    /// Creates the enhancer.
    public init() {}

    public func enhance(_ prompt: String) async -> Enhancement {
        Enhancement(prompt: prompt, provider: "none", fellBack: false, reason: nil)
    }
}

extension Duration {
    /// Seconds, for messages.
    var seconds: String {
        let (whole, fraction) = components
        return fraction == 0 ? "\(whole)" : "\(Double(whole) + Double(fraction) / 1e18)"
    }

}
