import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// docs/openapi.yaml, loaded through python3 (PyYAML) and checked against responses.
struct OpenAPISpec: Sendable {
    let root: ParsedJSON

    /// One operation of the spec.
    struct Operation: Sendable, CustomStringConvertible {
        let method: String
        let path: String
        let node: ParsedJSON
        var description: String { "\(method.uppercased()) \(path)" }
    }

    /// Loads the YAML file as JSON via python3.
    static func load() async throws -> OpenAPISpec {
        // Start the shared test Redis (if this process starts one) before the pipes to python
        // exist: a child spawned meanwhile would inherit their write ends (Foundation's pipes
        // are not close-on-exec) and, living as long as the run, keep the read from ending.
        _ = try TestEnvironment.redisURL()
        let file = TestEnvironment.packageRoot.appendingPathComponent("docs/openapi.yaml").path
        let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"
        let result = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, file])
        guard result.status == 0 else { throw TestSetupError("cannot load \(file) (PyYAML installed?): \(result.stderr)") }
        return OpenAPISpec(root: try ParsedJSON.parse(result.stdout))
    }

    var operations: [Operation] {
        var operations: [Operation] = []
        for (path, item) in root["paths"]?.object ?? [:] {
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                if let node = item[method] { operations.append(Operation(method: method, path: path, node: node)) }
            }
        }
        return operations.sorted { ($0.path, $0.method) < ($1.path, $1.method) }
    }

    /// The security requirements that apply to an operation.
    func security(_ operation: Operation) -> [ParsedJSON] {
        (operation.node["security"] ?? root["security"])?.array ?? []
    }

    /// Whether the operation may be called without credentials.
    func allowsAnonymous(_ operation: Operation) -> Bool {
        let requirements = security(operation)
        return requirements.isEmpty || requirements.contains { $0.object?.isEmpty == true }
    }

    /// Whether one of its requirements is the bearer token.
    func acceptsBearer(_ operation: Operation) -> Bool {
        security(operation).contains { $0["bearerAuth"] != nil }
    }

    /// The declared response for a status, `$ref`s followed.
    func response(_ operation: Operation, status: Int) -> ParsedJSON? {
        guard let responses = operation.node["responses"] else { return nil }
        return (responses[String(status)] ?? responses["default"]).map(resolve)
    }

    /// Follows `$ref` chains (local JSON pointers only).
    func resolve(_ node: ParsedJSON) -> ParsedJSON {
        var node = node
        for _ in 0..<32 {
            guard let reference = node["$ref"]?.string, reference.hasPrefix("#/") else { return node }
            var target: ParsedJSON? = root
            for token in reference.dropFirst(2).split(separator: "/") {
                let key = token.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
                target = target?[key]
            }
            node = target ?? .null
        }
        return node
    }

    /// Everything about `value` that `schema` forbids (empty when it conforms): types, required
    /// properties, nested properties, items, additional properties, enum/const, minimum, maxItems.
    func problems(_ value: ParsedJSON, _ schema: ParsedJSON, at path: String = "$") -> [String] {
        let schema = resolve(schema)
        for keyword in ["oneOf", "anyOf"] {
            if let alternatives = schema[keyword]?.array {
                let results = alternatives.map { problems(value, $0, at: path) }
                if !results.contains(where: \.isEmpty) {
                    return ["\(path): matches no alternative of \(keyword): \(results.flatMap { $0 })"]
                }
            }
        }
        if let allOf = schema["allOf"]?.array {
            let found = allOf.flatMap { problems(value, $0, at: path) }
            if !found.isEmpty { return found }
        }
        var found: [String] = []
        let kinds: Set<String> = switch value {
        case .null: ["null"]
        case .integer: ["integer", "number"]
        case .number: ["number"]
        case .bool: ["boolean"]
        case .string: ["string"]
        case .array: ["array"]
        case .object: ["object"]
        }
        let declared: [String] = schema["type"]?.string.map { [$0] } ?? schema["type"]?.array?.compactMap(\.string) ?? []
        if !declared.isEmpty, kinds.isDisjoint(with: declared) {
            return ["\(path): \(value) is not of type \(declared)"]
        }
        if let constant = schema["const"], constant != value { found.append("\(path): \(value) is not \(constant)") }
        if let allowed = schema["enum"]?.array, !allowed.contains(value) { found.append("\(path): \(value) is not one of \(allowed)") }
        if let minimum = schema["minimum"]?.integer, let number = value.integer, number < minimum {
            found.append("\(path): \(number) < minimum \(minimum)")
        }
        if case .object(let members) = value {
            for key in schema["required"]?.array?.compactMap(\.string) ?? [] where members[key] == nil {
                found.append("\(path): required property '\(key)' is missing")
            }
            let properties = schema["properties"]?.object ?? [:]
            for (key, member) in members {
                if let propertySchema = properties[key] {
                    found += problems(member, propertySchema, at: "\(path).\(key)")
                } else if let additional = schema["additionalProperties"] {
                    if additional == .bool(false) {
                        found.append("\(path): property '\(key)' is not allowed")
                    } else if additional.object != nil {
                        found += problems(member, additional, at: "\(path).\(key)")
                    }
                }
            }
        }
        if case .array(let items) = value {
            if let maximum = schema["maxItems"]?.integer, items.count > maximum {
                found.append("\(path): \(items.count) items > maxItems \(maximum)")
            }
            if let itemSchema = schema["items"] {
                for (index, item) in items.enumerated() { found += problems(item, itemSchema, at: "\(path)[\(index)]") }
            }
        }
        return found
    }
}

/// A JSON document's text.
func jsonText(_ value: ParsedJSON) throws -> String {
    func plain(_ value: ParsedJSON) -> Any {
        switch value {
        case .null: NSNull()
        case .integer(let number): number
        case .number(let number): number
        case .bool(let flag): flag
        case .string(let text): text
        case .array(let items): items.map(plain)
        case .object(let members): members.mapValues(plain)
        }
    }
    return String(decoding: try JSONSerialization.data(withJSONObject: plain(value), options: [.fragmentsAllowed]), as: UTF8.self)
}

@Suite("serve: docs/openapi.yaml against the running server")
struct OpenAPIConformanceTests {
    /// The API's routes: the spec must describe exactly these.
    static let contractRoutes: Set<String> = [
        "POST /v1/jobs", "GET /v1/jobs/{id}", "DELETE /v1/jobs/{id}", "GET /v1/jobs/{id}/image", "GET /v1/jobs/{id}/preview",
        "GET /v1/jobs/{id}/events", "GET /v1/events", "GET /v1/queues", "GET /v1/workers",
        "POST /v1/dead/{model}/retry", "DELETE /v1/dead/{model}", "GET /v1/dashboard", "GET /metrics",
        "POST /v1/queues/{model}/pause", "POST /v1/queues/{model}/resume", "PUT /v1/queues/{model}/concurrency", "GET /v1/stats",
        "GET /healthz", "GET /readyz", "GET /", "GET /jobs/{id}", "GET /dashboard/app.css", "GET /dashboard/app.js",
    ]
    /// Open to everyone: the probes, and the dashboard's page and files.
    static let openPaths: Set<String> = ["/healthz", "/readyz", "/", "/jobs/{id}", "/dashboard/app.css", "/dashboard/app.js"]

    /// What one call returned: a buffered reply, or the head of an event stream.
    private struct Answer {
        var status: Int
        var mediaType: String?
        var headers: [String: String]
        var body: [UInt8]
    }

    private func call(_ server: ServeProcess, _ spec: OpenAPISpec, _ operation: OpenAPISpec.Operation, path: String,
                      auth: Auth) async throws -> Answer {
        let streams = spec.response(operation, status: 200)?["content"]?["text/event-stream"] != nil
        if streams {
            let stream = try server.stream(path, auth: auth)
            defer { stream.process.send(SIGTERM) }
            let status = await stream.waitForHead(timeout: 20) ?? 0
            // An error answer is a complete JSON body: wait for curl to finish reading it.
            if status != 200 { _ = await stream.waitForEnd(timeout: 10) }
            return Answer(status: status, mediaType: stream.mediaType, headers: stream.headers, body: Array(stream.body.utf8))
        }
        var json: String?
        if operation.node["requestBody"]?["required"] == .bool(true),
           let example = operation.node["requestBody"]?["content"]?["application/json"]?["example"] {
            json = try jsonText(example)
        }
        let reply = try await server.send(operation.method.uppercased(), path, auth: auth, json: json, timeout: .seconds(20))
        return Answer(status: reply.status, mediaType: reply.mediaType, headers: reply.headers, body: reply.body)
    }

    /// Checks that `answer`'s status is declared, its media type is one the response declares,
    /// its required headers are present, and a JSON body matches the declared schema.
    private func check(_ answer: Answer, of operation: OpenAPISpec.Operation, in spec: OpenAPISpec, context: String,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        guard let response = spec.response(operation, status: answer.status) else {
            let declared = operation.node["responses"]?.object?.keys.sorted() ?? []
            Issue.record("\(context): status \(answer.status) is not among the declared \(declared); body: \(String(decoding: answer.body, as: UTF8.self).prefix(300))",
                         sourceLocation: sourceLocation)
            return
        }
        for (name, header) in response["headers"]?.object ?? [:] where spec.resolve(header)["required"] == .bool(true) {
            #expect(answer.headers[name.lowercased()] != nil, "\(context): required header \(name) missing: \(answer.headers)",
                    sourceLocation: sourceLocation)
        }
        guard let content = response["content"]?.object else { return }
        guard let mediaType = answer.mediaType, let media = content[mediaType] else {
            Issue.record("\(context): content type \(answer.mediaType ?? "none") is not among \(content.keys.sorted())",
                         sourceLocation: sourceLocation)
            return
        }
        guard mediaType == "application/json", let schema = media["schema"] else { return }
        guard let body = try? ParsedJSON.parse(String(decoding: answer.body, as: UTF8.self)) else {
            Issue.record("\(context): body is not JSON: \(String(decoding: answer.body, as: UTF8.self).prefix(300))",
                         sourceLocation: sourceLocation)
            return
        }
        let problems = spec.problems(body, schema)
        #expect(problems.isEmpty, "\(context): \(problems.joined(separator: "; "))\nbody: \(body)", sourceLocation: sourceLocation)
    }

    @Test("the spec describes exactly the contract's routes, with auth as the contract says")
    func specMatchesContract() async throws {
        let spec = try await OpenAPISpec.load()
        #expect(spec.root["openapi"]?.string?.hasPrefix("3.1") == true)
        let routes = Set(spec.operations.map { "\($0.method.uppercased()) \($0.path)" })
        #expect(routes == Self.contractRoutes, "missing: \(Self.contractRoutes.subtracting(routes)); extra: \(routes.subtracting(Self.contractRoutes))")
        #expect(spec.root["components"]?["securitySchemes"]?["bearerAuth"]?["scheme"] == .string("bearer"))
        for operation in spec.operations {
            let route = operation.description
            let mutating = operation.method != "get"
            let open = Self.openPaths.contains(operation.path)
            if mutating {
                #expect(!spec.allowsAnonymous(operation) && spec.acceptsBearer(operation), "\(route) must require the token")
            } else if open {
                #expect(spec.security(operation).isEmpty, "\(route) needs no credentials")
            } else {
                #expect(spec.allowsAnonymous(operation) && spec.acceptsBearer(operation), "\(route): token optional (--protect-reads)")
            }
            if !open { #expect(spec.response(operation, status: 401) != nil, "\(route) must declare 401") }
        }
    }

    @Test("a method the spec does not list for a path is 405 method_not_allowed, with Allow listing exactly the spec's methods")
    func otherMethodsAre405() async throws {
        let spec = try await OpenAPISpec.load()
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let paths = Set(spec.operations.map(\.path))
        #expect(!paths.isEmpty)
        for path in paths.sorted() {
            let declared = spec.operations.filter { $0.path == path }.map { $0.method.uppercased() }.sorted()
            // Any id or model: the method is judged before the route's handler runs.
            let concrete = path.replacingOccurrences(of: "{id}", with: "flux-01jzzzzzzzzzzzzzzzzzzzzzzz")
                .replacingOccurrences(of: "{model}", with: "flux")
            for method in ["PUT", "PATCH", "TRACE", "OPTIONS", "DELETE", "POST", "GET"] where !declared.contains(method) {
                let reply = try await server.send(method, concrete, auth: .none)
                expectError(reply, 405, "method_not_allowed", "\(method) \(concrete)")
                let allow = reply.header("Allow")?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                #expect(allow == declared, "\(method) \(concrete): Allow \(reply.header("Allow") ?? "missing"), the spec lists \(declared)")
            }
        }
        // A path the spec does not list stays a 404, whatever the method.
        expectError(try await server.send("TRACE", "/v1/no-such-route", auth: .none), 404, "not_found", "TRACE unknown path")
        expectError(try await server.send("PUT", "/v1/jobs/flux-01jzzzzzzzzzzzzzzzzzzzzzzz/nothing", auth: .none), 404, "not_found",
                    "PUT under a job")
    }

    @Test("every operation in docs/openapi.yaml answers a declared status, content type and schema")
    func serverMatchesSpec() async throws {
        let spec = try await OpenAPISpec.load()
        let fixture = try ServeFixture()
        defer { fixture.removeOutputDirectory() }
        let server = try await fixture.startServer()
        let worker = try fixture.startWorker(models: ["flux"])
        // A completed job (for the image and the status object with a result) and a queued one (to cancel).
        let completed = try await server.enqueue("a conformant fox")
        try #require(try await server.waitForJob(completed, status: "completed")["status"] == .string("completed"),
                     "worker output:\n\(worker.output)")
        let queued = try await server.enqueue("a conformant owl", model: "sdxl")
        let missing = "flux-01jzzzzzzzzzzzzzzzzzzzzzzz"

        for operation in spec.operations {
            let path = operation.path
                .replacingOccurrences(of: "{id}", with: operation.method == "delete" ? queued : completed)
                .replacingOccurrences(of: "{model}", with: "flux")
            let auth: Auth = spec.allowsAnonymous(operation) ? .none : .token
            let answer = try await call(server, spec, operation, path: path, auth: auth)
            let context = "\(operation) as \(path)"
            // The placeholder backend stores no preview: its route answers its declared 409 here
            // (its 200 is checked against an A1111 fake in JobRoutesTests).
            let noPreview = operation.path == "/v1/jobs/{id}/preview" && answer.status == 409
            #expect((200..<300).contains(answer.status) || noPreview, "\(context): \(answer.status) \(String(decoding: answer.body, as: UTF8.self).prefix(300))")
            check(answer, of: operation, in: spec, context: context)

            // Without credentials where the token is required: a declared 401.
            if !spec.allowsAnonymous(operation) {
                let refused = try await call(server, spec, operation, path: path, auth: .none)
                #expect(refused.status == 401, "\(context) without a token: \(refused.status)")
                check(refused, of: operation, in: spec, context: "\(context) without a token")
            }
            // An unknown job or model: a declared error (the API's routes; a job's page is the
            // page whatever the id, and says itself that there is no such job).
            if operation.path.hasPrefix("/v1/"), operation.path.contains("{id}") || operation.path.contains("{model}") {
                let unknown = operation.path.replacingOccurrences(of: "{id}", with: missing).replacingOccurrences(of: "{model}", with: "nope")
                let refused = try await call(server, spec, operation, path: unknown, auth: .token)
                #expect((400..<500).contains(refused.status), "\(operation) as \(unknown): \(refused.status)")
                check(refused, of: operation, in: spec, context: "\(operation) as \(unknown)")
            }
        }

        // With --protect-reads, every read route that takes the token declares the 401 it then answers.
        let protected = try await fixture.startServer(protectReads: true)
        for operation in spec.operations where spec.allowsAnonymous(operation) && spec.acceptsBearer(operation) {
            let path = operation.path.replacingOccurrences(of: "{id}", with: completed)
            let refused = try await call(protected, spec, operation, path: path, auth: .none)
            #expect(refused.status == 401, "\(operation) without a token under --protect-reads: \(refused.status)")
            check(refused, of: operation, in: spec, context: "\(operation) without a token under --protect-reads")
        }

        worker.send(SIGTERM)
        _ = try await worker.waitForExit()
    }
}
