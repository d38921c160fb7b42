import CurlHTTP
import FoundationEssentials
import ImageQueue
import Logging
import NIOCore
import Synchronization
import WSClient

/// A ComfyUI server running an API-format workflow: the prompt goes into one node's input,
/// every other node is sent as written. The render is submitted with `POST /prompt` under a
/// `prompt_id` derived from the job, so a retried attempt (this worker's, or another's
/// after a crash) finds its own earlier render in `/history` instead of rendering again.
/// Progress and previews come over the WebSocket `/ws?clientId=…` (the client id is derived
/// from the job too); the image from `/history/<prompt_id>` and `/view`; a cancelled job is
/// stopped with `POST /interrupt` and taken out of the server's queue. One image per call: a
/// job of n images submits the workflow n times, image k with every integer `seed` and
/// `noise_seed` input raised by k (so the images differ) and a prompt id of its own.
struct ComfyUIBackend: ImageGenerator {
    let call: BackendHTTP
    let url: String
    let workflow: [String: JSONValue]
    let promptNode: String
    let promptInput: String
    let params: [String: JSONValue]
    let logger: Logger

    private var base: String { url.hasSuffix("/") ? String(url.dropLast()) : url }

    /// How a render ended, as the server reported it.
    private enum End: Sendable {
        case done
        case failed(GenerationError)
    }

    func generate(_ request: GenerationRequest) async throws(GenerationError) -> [GeneratedImage] {
        [try await generateOne(request)]
    }

    private func generateOne(_ request: GenerationRequest) async throws(GenerationError) -> GeneratedImage {
        let clientID = Self.uuid(request.jobID + "#client")
        // The job's first image keeps the prompt ids of a one-image job; image k its own.
        let renders = request.index == 0 ? request.jobID : request.jobID + "/\(request.index)"
        // This image's renders so far: a finished one is fetched; a failed one is skipped.
        var attempt = 1
        var promptID = Self.uuid(renders + "#1")
        while true {
            switch try await history(promptID) {
            case .some(.done): return try await image(of: promptID)
            case .some(.failed) where attempt < 100:
                attempt += 1
                promptID = Self.uuid(renders + "#\(attempt)")
                continue
            default: break
            }
            break
        }
        let submitted = try await isQueued(promptID)
        let id = promptID
        let end: Result<End, GenerationError> = await withTaskGroup { group in
            group.addTask { await render(request, promptID: id, clientID: clientID, alreadyQueued: submitted) }
            group.addTask {
                try? await Task.sleep(for: call.timeout)
                return Task.isCancelled ? .failure(GenerationError(.unreachable, "cancelled"))
                                        : .failure(GenerationError(.timeout, "the render did not end within \(call.timeout.seconds) s"))
            }
            let first = await group.next() ?? .failure(GenerationError(.unreachable, "cancelled"))
            group.cancelAll()
            return first
        }
        let timedOut = if case .failure(let error) = end { error.kind == .timeout } else { false }
        if Task.isCancelled || timedOut {
            // Cancelled or timed out: stop the render and drop it from the server's queue.
            await call.notify(jsonRequest("/interrupt", .object(["prompt_id": .string(id)])))
            await call.notify(jsonRequest("/queue", .object(["delete": .array([.string(id)])])))
            if Task.isCancelled { throw GenerationError(.unreachable, "cancelled") }
        }
        switch try end.get() {
        case .done: return try await image(of: id)
        case .failed(let error): throw error
        }
    }

    /// Submits (unless already queued) and follows the render over the WebSocket; falls back
    /// to reading `/history` once a second when the socket cannot be had or drops.
    private func render(_ request: GenerationRequest, promptID: String, clientID: String,
                        alreadyQueued: Bool) async -> Result<End, GenerationError> {
        let submittedFlag = Mutex(alreadyQueued)
        let outcome = Mutex<End?>(nil)
        let wsURL = (base.hasPrefix("https://") ? "wss://" + base.dropFirst(8) : "ws://" + base.dropFirst(7)) + "/ws?clientId=" + clientID
        var configuration = WebSocketClientConfiguration()
        configuration.maxFrameSize = 4 << 20
        do {
            try await WebSocketClient.connect(url: wsURL, configuration: configuration,
                                              tlsConfiguration: base.hasPrefix("https://") ? .makeClientConfiguration() : nil,
                                              logger: logger) { inbound, _, _ in
                if !submittedFlag.withLock({ $0 }) {
                    try await submit(request, promptID: promptID, clientID: clientID)
                    submittedFlag.withLock { $0 = true }
                }
                for try await message in inbound.messages(maxSize: 4 << 20) {
                    if let end = handle(message, promptID: promptID, progress: request.progress) {
                        outcome.withLock { $0 = end }
                        return
                    }
                }
            }
        } catch let error as GenerationError {
            return .failure(error)
        } catch {
            if Task.isCancelled { return .failure(GenerationError(.unreachable, "cancelled")) }
            logger.debug("ComfyUI WebSocket unavailable; following the render through /history", metadata: ["error": "\(error)"])
        }
        if let end = outcome.withLock({ $0 }) { return .success(end) }
        do throws(GenerationError) {
            if !submittedFlag.withLock({ $0 }) { try await submit(request, promptID: promptID, clientID: clientID) }
            while !Task.isCancelled {
                switch try await history(promptID) {
                case .some(.done): return .success(.done)
                case .some(.failed(let error)): return .success(.failed(error))
                case nil: try? await Task.sleep(for: .seconds(1))
                }
            }
            return .failure(GenerationError(.unreachable, "cancelled"))
        } catch {
            return .failure(error)
        }
    }

    /// One WebSocket message: progress, a preview, or the render's end.
    private func handle(_ message: WebSocketMessage, promptID: String, progress: ProgressReporter) -> End? {
        switch message {
        case .binary(let buffer):
            // PREVIEW_IMAGE frames: event type 1, an image format (1 JPEG, 2 PNG), the image.
            var buffer = buffer
            guard let event = buffer.readInteger(as: UInt32.self), event == 1, buffer.readInteger(as: UInt32.self) != nil,
                  let bytes = buffer.readBytes(length: buffer.readableBytes), bytes.count <= WorkerQueue.maxPreviewBytes,
                  ImageFormat.contentType(of: bytes) != nil else { return nil }
            progress(nil, preview: bytes)
            return nil
        case .text(let text):
            guard case .object(let fields)? = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)),
                  let type = fields["type"]?.stringValue, let data = fields["data"]?.objectValue,
                  data["prompt_id"]?.stringValue == promptID else { return nil }
            switch type {
            case "progress":
                if let value = data["value"]?.doubleValue, let max = data["max"]?.doubleValue, max > 0 { progress(value / max) }
            case "executing" where data["node"] == nil || data["node"] == .null:
                return .done
            case "execution_success":
                return .done
            case "execution_error":
                let node = data["node_type"]?.stringValue ?? data["node_id"]?.stringValue ?? "?"
                let reason = String((data["exception_message"]?.stringValue ?? "an error").prefix(200))
                return .failed(GenerationError(.rejected, "ComfyUI node \(node) failed: \(reason)"))
            case "execution_interrupted":
                return .failed(GenerationError(.serverError, "the render was interrupted on the ComfyUI server"))
            default: break
            }
            return nil
        }
    }

    private func submit(_ request: GenerationRequest, promptID: String, clientID: String) async throws(GenerationError) {
        var graph = workflow
        if request.index > 0 {
            for (id, value) in graph {
                guard case .object(var node) = value, var inputs = node["inputs"]?.objectValue else { continue }
                var changed = false
                for name in ["seed", "noise_seed"] {
                    if let seed = inputs[name]?.intValue {
                        inputs[name] = .int(seed + Int64(request.index))
                        changed = true
                    }
                }
                if changed {
                    node["inputs"] = .object(inputs)
                    graph[id] = .object(node)
                }
            }
        }
        if case .object(var node)? = graph[promptNode] {
            var inputs = node["inputs"]?.objectValue ?? [:]
            inputs[promptInput] = .string(request.prompt)
            node["inputs"] = .object(inputs)
            graph[promptNode] = .object(node)
        }
        var body = params
        body["prompt"] = .object(graph)
        body["client_id"] = .string(clientID)
        body["prompt_id"] = .string(promptID)
        let response = try await call.post(base + "/prompt", json: .object(body), timeout: .seconds(30))
        guard response.status < 300 else {
            let answer = BackendResponse.object(response)
            let message = answer?["error"]?.objectValue?["message"]?.stringValue ?? answer?["error"]?.stringValue
            try BackendResponse.checkStatus(response, detail: message.map { "ComfyUI refused the workflow: \(String($0.prefix(200)))" })
            return
        }
    }

    /// The render's state from `/history/<id>`: nil while unknown (not submitted, queued or running).
    private func history(_ promptID: String) async throws(GenerationError) -> End? {
        let response = try await call.send(HTTPRequest(method: "GET", url: base + "/history/" + promptID), timeout: .seconds(30))
        try BackendResponse.checkStatus(response)
        guard let entry = BackendResponse.object(response)?[promptID]?.objectValue else { return nil }
        let status = entry["status"]?.objectValue
        if status?["status_str"]?.stringValue == "error" || status?["completed"] == .bool(false) {
            return .failed(GenerationError(.serverError, "the ComfyUI render ended in an error"))
        }
        return Self.outputImage(entry) == nil ? .failed(GenerationError(.invalidImage, "the workflow saved no image")) : .done
    }

    /// Whether the server's queue already holds the render (a crashed worker submitted it).
    private func isQueued(_ promptID: String) async throws(GenerationError) -> Bool {
        guard let response = try? await call.send(HTTPRequest(method: "GET", url: base + "/queue"), timeout: .seconds(30)),
              response.status == 200, let answer = BackendResponse.object(response) else { return false }
        for key in ["queue_running", "queue_pending"] {
            guard case .array(let items)? = answer[key] else { continue }
            for case .array(let item) in items where item.count > 1 && item[1].stringValue == promptID { return true }
        }
        return false
    }

    /// The first saved image of a finished render, fetched with `/view`.
    private func image(of promptID: String) async throws(GenerationError) -> GeneratedImage {
        let response = try await call.send(HTTPRequest(method: "GET", url: base + "/history/" + promptID), timeout: .seconds(30))
        try BackendResponse.checkStatus(response)
        guard let entry = BackendResponse.object(response)?[promptID]?.objectValue, let file = Self.outputImage(entry) else {
            throw GenerationError(.invalidImage, "the ComfyUI history of the render holds no image")
        }
        let query = ["filename": file.filename, "subfolder": file.subfolder, "type": file.type]
            .sorted { $0.key < $1.key }.map { "\($0.key)=\(URLEncoding.queryValue($0.value))" }.joined(separator: "&")
        return try BackendResponse.image(from: await call.send(HTTPRequest(method: "GET", url: base + "/view?" + query)))
    }

    private static func outputImage(_ entry: [String: JSONValue]) -> (filename: String, subfolder: String, type: String)? {
        guard let outputs = entry["outputs"]?.objectValue else { return nil }
        for (_, output) in outputs.sorted(by: { $0.key < $1.key }) {
            guard case .array(let images)? = output.objectValue?["images"] else { continue }
            for case .object(let image) in images {
                if let name = image["filename"]?.stringValue, (image["type"]?.stringValue ?? "output") == "output" {
                    return (name, image["subfolder"]?.stringValue ?? "", "output")
                }
            }
        }
        return nil
    }

    private func jsonRequest(_ path: String, _ body: JSONValue) -> HTTPRequest {
        HTTPRequest(method: "POST", url: base + path, headers: [("Content-Type", "application/json")],
                    body: (try? JSONEncoder().encode(body)).map { Array($0) })
    }

    /// A canonical lowercase UUID (version 8: custom) from `text`: two 64-bit FNV-1a hashes.
    static func uuid(_ text: String) -> String {
        func fnv(_ seed: UInt64) -> UInt64 {
            var hash = seed
            for byte in text.utf8 {
                hash ^= UInt64(byte)
                hash &*= 0x100_0000_01b3
            }
            return hash
        }
        var bytes = withUnsafeBytes(of: fnv(0xcbf2_9ce4_8422_2325).bigEndian, Array.init)
            + withUnsafeBytes(of: fnv(0x8422_2325_cbf2_9ce4).bigEndian, Array.init)
        bytes[6] = (bytes[6] & 0x0F) | 0x80
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = bytes.map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
        }
        return [hex[0..<4], hex[4..<6], hex[6..<8], hex[8..<10], hex[10..<16]].map { $0.joined() }.joined(separator: "-")
    }
}
