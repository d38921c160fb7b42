import CurlHTTP
import FoundationEssentials
import ImageQueue

/// One model's backend: which service makes its images, where, and with which settings.
/// Built from the models file (`IMAGEQUEUE_MODELS_FILE`) or from the seed's variables.
public struct ModelSpec: Sendable, Equatable {
    /// The services a model can be sent to.
    public enum Backend: String, Sendable, CaseIterable {
        /// The seed's Flux worker: `GET {url}?prompt=…`.
        case fluxWorker = "flux-worker"
        /// The seed's SDXL worker: `POST {url}` with `{"prompt"}` and a bearer token.
        case sdxlWorker = "sdxl-worker"
        /// Cloudflare Workers AI REST: `POST …/ai/run/<model>` with a bearer token.
        case workersAI = "workers-ai"
        /// The AUTOMATIC1111 / Forge web UI API (`/sdapi/v1/txt2img`).
        case a1111
        /// A ComfyUI server running an API-format workflow.
        case comfyui
        /// OpenAI-compatible `POST /v1/images/generations`.
        case openai
        /// The offline renderer: no network, no keys.
        case placeholder

        /// Whether the backend needs a key (`api_key_env`).
        var needsKey: Bool { self == .sdxlWorker || self == .workersAI || self == .openai }
        /// Whether it needs at least one URL.
        var needsURL: Bool { self != .placeholder }
    }

    /// The model's name in the queue.
    public var name: String
    public var backend: Backend
    /// One URL, or several forming a pool.
    public var urls: [String]
    /// The name of the environment variable holding the key (never the key).
    public var apiKeyVariable: String?
    /// The key itself, read from `apiKeyVariable` at start; never printed.
    public var apiKey: String?
    /// The backend's own model id, where it has one (OpenAI `model`, A1111 checkpoint, …).
    public var backendModel: String?
    /// Members merged into the backend request.
    public var params: [String: JSONValue]
    /// This model's generation timeout (default: `IMAGEQUEUE_GENERATION_TIMEOUT`).
    public var timeout: Duration?
    /// ComfyUI: the workflow file, its contents, the node that takes the prompt and its input.
    public var workflowPath: String?
    public var workflow: [String: JSONValue]?
    public var promptNode: String?
    public var promptInput: String

    public init(name: String, backend: Backend, urls: [String] = [], apiKeyVariable: String? = nil, apiKey: String? = nil,
                backendModel: String? = nil, params: [String: JSONValue] = [:], timeout: Duration? = nil,
                workflowPath: String? = nil, workflow: [String: JSONValue]? = nil, promptNode: String? = nil,
                promptInput: String = "text") {
        self.name = name
        self.backend = backend
        self.urls = urls
        self.apiKeyVariable = apiKeyVariable
        self.apiKey = apiKey
        self.backendModel = backendModel
        self.params = params
        self.timeout = timeout
        self.workflowPath = workflowPath
        self.workflow = workflow
        self.promptNode = promptNode
        self.promptInput = promptInput
    }

    /// The model as `imagequeue models --json` prints it: no key, only the variable's name.
    public var publicDescription: JSONValue {
        var fields: [String: JSONValue] = ["name": .string(name), "backend": .string(backend.rawValue),
                                           "urls": .array(urls.map { .string(shareableURL($0)) })]
        if let apiKeyVariable { fields["api_key_env"] = .string(apiKeyVariable) }
        if let backendModel { fields["model"] = .string(backendModel) }
        if !params.isEmpty { fields["params"] = .object(params) }
        if let timeout { fields["timeout_s"] = .double(Double(timeout.wholeMilliseconds) / 1000) }
        if let workflowPath { fields["workflow"] = .string(workflowPath) }
        if let promptNode { fields["prompt_node"] = .string(promptNode) }
        if backend == .comfyui { fields["prompt_input"] = .string(promptInput) }
        return .object(fields)
    }
}

/// Every model a deployment serves and its backend.
public struct ModelTable: Sendable, Equatable {
    /// The models, by name in alphabetical order.
    public var models: [ModelSpec]
    /// Where the table came from: the file's path, or nil for the seed's variables.
    public var file: String?

    public init(models: [ModelSpec], file: String? = nil) {
        self.models = models.sorted { $0.name < $1.name }
        self.file = file
    }

    /// The model named `name`.
    public subscript(_ name: String) -> ModelSpec? { models.first { $0.name == name } }

    /// The names, in order.
    public var names: [String] { models.map(\.name) }

    /// The keys a model may have in the file.
    static let knownKeys: Set<String> = ["backend", "url", "urls", "api_key_env", "model", "params", "timeout_s",
                                         "workflow", "prompt_node", "prompt_input"]

    /// Reads the models file. `environment` supplies the keys named by `api_key_env`; with
    /// `requireKeys` false (producers, which never call a backend) a missing key is no error.
    /// - Throws: `ConfigurationError` naming `IMAGEQUEUE_MODELS_FILE`, the model and the key.
    public static func load(file path: String, environment: [String: String], requireKeys: Bool) throws(ConfigurationError) -> ModelTable {
        let setting = "IMAGEQUEUE_MODELS_FILE"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(setting: setting, reason: "cannot read \(path)")
        }
        return try parse(Array(data), file: path, environment: environment, requireKeys: requireKeys)
    }

    /// Parses a models file's JSON (see `load`).
    public static func parse(_ bytes: [UInt8], file: String, environment: [String: String],
                             requireKeys: Bool) throws(ConfigurationError) -> ModelTable {
        let setting = "IMAGEQUEUE_MODELS_FILE"
        func fail(_ reason: String) -> ConfigurationError { ConfigurationError(setting: setting, reason: "\(file): \(reason)") }
        guard case .object(let entries)? = try? JSONDecoder().decode(JSONValue.self, from: Data(bytes)) else {
            throw fail("is not a JSON object of model name → settings")
        }
        if entries.isEmpty { throw fail("names no model") }
        var models: [ModelSpec] = []
        for (name, value) in entries.sorted(by: { $0.key < $1.key }) {
            guard QueueConfiguration.isValidModelName(name) else {
                throw fail("model '\(name.prefix(40))': a model name is 1-32 characters of a-z, 0-9 and _ (e.g. flux_dev)")
            }
            guard case .object(let fields) = value else { throw fail("model '\(name)': its settings must be a JSON object") }
            func key(_ key: String, _ reason: String) -> ConfigurationError { fail("model '\(name)', key '\(key)': \(reason)") }
            if let unknown = fields.keys.sorted().first(where: { !knownKeys.contains($0) }) {
                throw key(unknown, "is not a known key (known: \(knownKeys.sorted().joined(separator: ", ")))")
            }
            guard let backendText = fields["backend"]?.stringValue else { throw key("backend", "is required: one of \(Self.backendList)") }
            guard let backend = ModelSpec.Backend(rawValue: backendText) else {
                throw key("backend", "'\(backendText.prefix(40))' is not a backend: one of \(Self.backendList)")
            }
            var spec = ModelSpec(name: name, backend: backend)
            func string(_ name: String) throws(ConfigurationError) -> String? {
                guard let value = fields[name] else { return nil }
                guard let text = value.stringValue, !text.isEmpty else { throw key(name, "must be a non-empty string") }
                return text
            }
            if let url = try string("url") { spec.urls = [url] }
            if let list = fields["urls"] {
                guard case .array(let items) = list, !items.isEmpty else { throw key("urls", "must be a non-empty list of URLs") }
                for item in items {
                    guard let url = item.stringValue else { throw key("urls", "must hold only strings") }
                    spec.urls.append(url)
                }
            }
            for url in spec.urls where !(url.hasPrefix("http://") || url.hasPrefix("https://")) || url.count < 10 {
                throw key(fields["urls"] != nil ? "urls" : "url", "'\(shareableURL(url).prefix(60))' is not an http:// or https:// URL")
            }
            if backend.needsURL, spec.urls.isEmpty { throw key("url", "is required for the \(backend.rawValue) backend") }
            spec.apiKeyVariable = try string("api_key_env")
            if let variable = spec.apiKeyVariable {
                spec.apiKey = environment[variable].flatMap { $0.isEmpty ? nil : $0 }
                if requireKeys, spec.apiKey == nil { throw key("api_key_env", "names \(variable), which is not set") }
            } else if backend.needsKey, backend != .openai {
                throw key("api_key_env", "is required for the \(backend.rawValue) backend (the name of the variable holding its key)")
            }
            spec.backendModel = try string("model")
            if let params = fields["params"] {
                guard case .object(let members) = params else { throw key("params", "must be a JSON object") }
                spec.params = members
            }
            if let timeout = fields["timeout_s"] {
                guard let seconds = timeout.doubleValue, seconds > 0, seconds < 1e6 else { throw key("timeout_s", "must be a positive number of seconds") }
                spec.timeout = .milliseconds(Int64((seconds * 1000).rounded(.up)))
            }
            spec.workflowPath = try string("workflow")
            spec.promptNode = try string("prompt_node")
            if let input = try string("prompt_input") { spec.promptInput = input }
            if backend == .comfyui {
                guard let path = spec.workflowPath else { throw key("workflow", "is required for comfyui: the path of an API-format workflow JSON") }
                guard let node = spec.promptNode else { throw key("prompt_node", "is required for comfyui: the id of the node that receives the prompt") }
                let resolved = path.hasPrefix("/") || !file.contains("/") ? path : String(file[...file.lastIndex(of: "/")!]) + path
                guard let contents = FileManager.default.contents(atPath: resolved) else { throw key("workflow", "cannot read \(resolved)") }
                guard case .object(let workflow)? = try? JSONDecoder().decode(JSONValue.self, from: contents), !workflow.isEmpty else {
                    throw key("workflow", "\(resolved) is not an API-format workflow (a JSON object of node id → node)")
                }
                guard case .object(let promptNode)? = workflow[node], case .object(let inputs)? = promptNode["inputs"] else {
                    throw key("prompt_node", "'\(node)' is not a node with inputs in \(resolved)")
                }
                if let current = inputs[spec.promptInput], current.stringValue == nil {
                    throw key("prompt_input", "input '\(spec.promptInput)' of node '\(node)' is not a text input")
                }
                spec.workflowPath = resolved
                spec.workflow = workflow
            } else {
                for comfyKey in ["workflow", "prompt_node", "prompt_input"] where fields[comfyKey] != nil {
                    throw key(comfyKey, "is used only by the comfyui backend")
                }
            }
            models.append(spec)
        }
        return ModelTable(models: models, file: file)
    }

    static var backendList: String { ModelSpec.Backend.allCases.map(\.rawValue).joined(separator: ", ") }

    /// The seed's shorthand: `flux` at FLUX_WORKER_URL and `sdxl` at SDXL_WORKER_URL with
    /// SDXL_API_KEY, for those of `names` whose variables are set; `placeholder` for every name
    /// when `placeholder` is true.
    public static func fromSeedVariables(names: [String], fluxURL: String?, sdxlURL: String?, sdxlAPIKey: String?,
                                         placeholder: Bool) -> (table: ModelTable, skipped: [(model: String, reason: String)]) {
        var models: [ModelSpec] = []
        var skipped: [(String, String)] = []
        for name in names {
            if placeholder {
                models.append(ModelSpec(name: name, backend: .placeholder))
                continue
            }
            switch name {
            case "flux" where fluxURL == nil: skipped.append((name, "FLUX_WORKER_URL is not set"))
            case "sdxl" where sdxlURL == nil: skipped.append((name, "SDXL_WORKER_URL is not set"))
            case "sdxl" where sdxlAPIKey == nil: skipped.append((name, "SDXL_API_KEY is not set"))
            case "flux": models.append(ModelSpec(name: name, backend: .fluxWorker, urls: [fluxURL!]))
            case "sdxl": models.append(ModelSpec(name: name, backend: .sdxlWorker, urls: [sdxlURL!], apiKeyVariable: "SDXL_API_KEY", apiKey: sdxlAPIKey))
            default: skipped.append((name, "no backend is known for this model (name it in IMAGEQUEUE_MODELS_FILE)"))
            }
        }
        return (ModelTable(models: models), skipped)
    }
}
