import Foundation
import Testing
import TestSupport

/// `POST /v1/jobs` and `GET /v1/jobs/{id}`.
@Suite("serve: enqueue and status")
struct EnqueueTests {
    /// The keys of the status object, all always present.
    static let statusKeys: Set<String> = ["id", "model", "status", "attempt", "max_attempts", "position", "prompt", "user",
                                          "enhance", "enhanced_prompt", "enqueued_at", "started_at", "finished_at",
                                          "worker", "result", "error", "metadata", "priority", "n", "eta_ms", "webhook", "history"]

    @Test("202 with id, model, status, position and created; GET answers exactly what `imagequeue status --json` prints")
    func enqueueAndStatus() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()

        let first = try await server.send("POST", "/v1/jobs",
                                          json: try jsonText(["model": "flux", "prompt": "a fox in the snow", "user": "alice"]))
        #expect(first.status == 202, "\(first)")
        #expect(first.mediaType == "application/json", "\(first)")
        let job = try first.json()
        #expect(Set(job.object?.keys.map { $0 } ?? []) == ["id", "model", "status", "position", "created"], "\(first)")
        let id = try #require(job["id"]?.string)
        #expect(id.hasPrefix("flux-"))
        #expect(job["model"] == .string("flux"))
        #expect(job["status"] == .string("queued"))
        #expect(job["position"] == .integer(1))
        #expect(job["created"] == .bool(true))

        let second = try await server.send("POST", "/v1/jobs",
                                           json: try jsonText(["model": "flux", "prompt": "a hare", "user": "bob", "enhance": false]))
        #expect(second.status == 202, "\(second)")
        #expect(try second.json()["position"] == .integer(2), "\(second)")
        let secondID = try #require(try second.json()["id"]?.string)

        // The status object: every key, exactly as the CLI prints it.
        for jobID in [id, secondID] {
            let reply = try await server.get("/v1/jobs/\(jobID)", auth: .none)
            #expect(reply.status == 200, "\(reply)")
            #expect(reply.mediaType == "application/json", "\(reply)")
            let status = try reply.json()
            #expect(Set(status.object?.keys.map { $0 } ?? []) == Self.statusKeys, "\(reply)")
            let cli = try await fixture.run(["status", "--json", jobID])
            try #require(cli.status == 0, "imagequeue status: \(cli.stderr)")
            #expect(status == (try ParsedJSON.parse(cli.stdout)), "HTTP: \(status)\nCLI: \(cli.stdout)")
        }
        let status = try await server.json("/v1/jobs/\(id)")
        #expect(status["prompt"] == .string("a fox in the snow"))
        #expect(status["user"] == .string("alice"))
        #expect(status["enhance"] == .bool(true))  // the default
        #expect(status["position"] == .integer(1))
        #expect(status["attempt"] == .integer(0))
        #expect(status["started_at"] == .null)
        #expect(status["result"] == .null)
        #expect(status["enqueued_at"]?.integer != nil)
        #expect(try await server.json("/v1/jobs/\(secondID)")["enhance"] == .bool(false))
    }

    @Test("a repeated idempotency_key returns the same job with created: false; position is null (not left out) once it is not queued")
    func idempotencyKey() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let body = try jsonText(["model": "sdxl", "prompt": "a stag", "user": "alice", "idempotency_key": "order-17"])
        let first = try await server.send("POST", "/v1/jobs", json: body)
        let again = try await server.send("POST", "/v1/jobs", json: body)
        #expect(first.status == 202, "\(first)")
        #expect(again.status == 202, "\(again)")
        #expect(try first.json()["created"] == .bool(true))
        #expect(try again.json()["created"] == .bool(false), "\(again)")
        #expect(try again.json()["id"] == (try first.json()["id"]), "\(first) vs \(again)")
        #expect(try again.json()["position"] == .integer(1), "\(again)")
        let queues = try await server.json("/v1/queues")
        #expect(queues["sdxl"]?["pending"] == .integer(1), "\(queues)")

        // Once the job is no longer queued (here: cancelled), a repeat still has every
        // property of EnqueuedJob: position is there, and null.
        let id = try #require(try first.json()["id"]?.string)
        #expect(try await server.send("DELETE", "/v1/jobs/\(id)").status == 200)
        let late = try await server.send("POST", "/v1/jobs", json: body)
        #expect(late.status == 202, "\(late)")
        let object = try #require(try late.json().object, "\(late)")
        #expect(Set(object.keys) == ["id", "model", "status", "position", "created"], "\(late)")
        #expect(object["position"] == .null, "\(late)")
        #expect(object["status"] == .string("cancelled"), "\(late)")
        #expect(object["created"] == .bool(false), "\(late)")
    }

    @Test("validation failures are 400 with the contract's error code, and enqueue nothing")
    func validation() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let fox = "a fox"
        let cases: [(label: String, body: String, codes: Set<String>)] = [
            ("unknown model", try jsonText(["model": "nope", "prompt": fox, "user": "alice"]), ["unknown_model"]),
            ("blank prompt", try jsonText(["model": "flux", "prompt": "   ", "user": "alice"]), ["empty_prompt"]),
            ("empty prompt", try jsonText(["model": "flux", "prompt": "", "user": "alice"]), ["empty_prompt"]),
            ("2001-character prompt", try jsonText(["model": "flux", "prompt": String(repeating: "a", count: 2001), "user": "alice"]),
             ["prompt_too_long"]),
            ("BEL in the prompt", try jsonText(["model": "flux", "prompt": "a fox\u{07}", "user": "alice"]), ["control_characters"]),
            ("empty user", try jsonText(["model": "flux", "prompt": fox, "user": ""]), ["invalid_user"]),
            ("129-byte user", try jsonText(["model": "flux", "prompt": fox, "user": String(repeating: "u", count: 129)]), ["invalid_user"]),
            ("empty idempotency key", try jsonText(["model": "flux", "prompt": fox, "user": "alice", "idempotency_key": ""]),
             ["invalid_request"]),
            // The contract names no code for a body of the wrong shape; docs/openapi.yaml
            // documents invalid_json ("not the JSON object this route expects").
            ("no prompt", try jsonText(["model": "flux", "user": "alice"]), ["invalid_json"]),
            ("no model", try jsonText(["prompt": fox, "user": "alice"]), ["invalid_json"]),
            ("no user", try jsonText(["model": "flux", "prompt": fox]), ["invalid_json"]),
            ("enhance not a boolean", try jsonText(["model": "flux", "prompt": fox, "user": "alice", "enhance": "yes"]),
             ["invalid_json"]),
            ("prompt not a string", try jsonText(["model": "flux", "prompt": 42, "user": "alice"]), ["invalid_json"]),
            // The optional fields may be left out, not sent as null.
            ("enhance null", #"{"model": "flux", "prompt": "a fox", "user": "alice", "enhance": null}"#, ["invalid_json"]),
            ("idempotency_key null", #"{"model": "flux", "prompt": "a fox", "user": "alice", "idempotency_key": null}"#,
             ["invalid_json"]),
            ("a JSON array", #"["flux", "a fox", "alice"]"#, ["invalid_json"]),
            ("malformed JSON", #"{"model": "flux", "prompt": "#, ["invalid_json"]),
            ("not JSON at all", "model=flux&prompt=fox", ["invalid_json"]),
            ("an empty body", "", ["invalid_json"]),
        ]
        for item in cases {
            let reply = try await server.send("POST", "/v1/jobs", json: item.body)
            #expect(reply.status == 400, "\(item.label): \(reply)")
            #expect(reply.mediaType == "application/json", "\(item.label): \(reply)")
            let code = reply.errorCode ?? "<no error code>"
            #expect(item.codes.contains(code), "\(item.label): expected \(item.codes.sorted()), got \(reply)")
            let message = (try? reply.json())?["error"]?["message"]?.string ?? ""
            #expect(!message.isEmpty && !message.contains("\n"), "\(item.label): \(reply)")
        }
        let queues = try await server.json("/v1/queues")
        #expect(queues["flux"]?["pending"] == .integer(0), "\(queues)")
        #expect(queues["sdxl"]?["pending"] == .integer(0), "\(queues)")
    }

    @Test("a 70 KiB body is 413 payload_too_large; a 60 KiB one is read (and judged on its prompt)")
    func bodyLimit() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let large = try jsonText(["model": "flux", "prompt": String(repeating: "a", count: 70 * 1024), "user": "alice"])
        expectError(try await server.send("POST", "/v1/jobs", json: large), 413, "payload_too_large", "70 KiB body")
        let under = try jsonText(["model": "flux", "prompt": String(repeating: "a", count: 60 * 1024), "user": "alice"])
        expectError(try await server.send("POST", "/v1/jobs", json: under), 400, "prompt_too_long", "60 KiB body")
        // The server still answers afterwards.
        #expect(try await server.send("POST", "/v1/jobs", json: try jsonText(["model": "flux", "prompt": "a fox", "user": "a"])).status == 202)
    }

    @Test("a body that is not application/json is 415 unsupported_media_type; a charset parameter is fine")
    func mediaType() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer()
        let body = try jsonText(["model": "flux", "prompt": "a fox", "user": "alice"])
        for type in ["text/plain", "application/x-www-form-urlencoded", "text/json"] {
            expectError(try await server.send("POST", "/v1/jobs", json: body, contentType: type), 415, "unsupported_media_type",
                        "Content-Type \(type)")
        }
        let queues = try await server.json("/v1/queues")
        #expect(queues["flux"]?["pending"] == .integer(0), "\(queues)")
        let charset = try await server.send("POST", "/v1/jobs", json: body, contentType: "application/json; charset=utf-8")
        #expect(charset.status == 202, "application/json; charset=utf-8: \(charset)")
    }

    @Test("a Redis at maxmemory (noeviction): POST /v1/jobs and dead retry are 503 redis_full with Retry-After; reads still work")
    func fullRedis() async throws {
        // maxmemory 1 byte: full from the start, every write that needs memory is refused.
        let redis = try await RedisServer.launch(extraArguments: ["--maxmemory", "1", "--maxmemory-policy", "noeviction"])
        let fixture = try ServeFixture(redisURL: redis.url)
        let server = try await fixture.startServer(environment: ["IMAGEQUEUE_RATE_LIMIT": "10/60"])
        let enqueue = try await server.send("POST", "/v1/jobs", json: try jsonText(["model": "flux", "prompt": "a fox", "user": "alice"]))
        expectError(enqueue, 503, "redis_full", "enqueue into a full Redis")
        #expect(enqueue.header("Retry-After").flatMap { Int($0) }.map { $0 >= 1 } == true, "\(enqueue.headers)")
        #expect((try? enqueue.json())?["error"]?["message"]?.string
                == "Redis is out of memory (maxmemory reached): nothing was queued; try again later", "\(enqueue)")
        let retry = try await server.send("POST", "/v1/dead/flux/retry")
        expectError(retry, 503, "redis_full", "dead retry into a full Redis")
        #expect(retry.header("Retry-After") != nil, "\(retry.headers)")
        let queues = try await server.json("/v1/queues")
        #expect(queues["flux"]?["pending"] == .integer(0), "\(queues)")
    }

    @Test("past IMAGEQUEUE_MAX_PENDING queued jobs of a model, POST /v1/jobs is 503 queue_full with Retry-After")
    func pendingCap() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer(environment: ["IMAGEQUEUE_MAX_PENDING": "2", "IMAGEQUEUE_RATE_LIMIT": "off"])
        let body = try jsonText(["model": "flux", "prompt": "a fox", "user": "erin"])
        for _ in 0..<2 {
            let accepted = try await server.send("POST", "/v1/jobs", json: body)
            #expect(accepted.status == 202, "\(accepted)")
        }
        let third = try await server.send("POST", "/v1/jobs", json: body)
        expectError(third, 503, "queue_full", "a third job past the cap of 2")
        #expect(third.header("Retry-After").flatMap { Int($0) }.map { $0 >= 1 } == true, "\(third.headers)")
        let other = try await server.send("POST", "/v1/jobs", json: try jsonText(["model": "sdxl", "prompt": "a fox", "user": "erin"]))
        #expect(other.status == 202, "the cap is per model: \(other)")
        let queues = try await server.json("/v1/queues")
        #expect(queues["flux"]?["pending"] == .integer(2), "\(queues)")
    }

    @Test("past the rate limit (IMAGEQUEUE_RATE_LIMIT=1/60) a user gets 429 rate_limited with Retry-After; others do not")
    func rateLimit() async throws {
        let fixture = try ServeFixture()
        let server = try await fixture.startServer(environment: ["IMAGEQUEUE_RATE_LIMIT": "1/60"])
        let body = try jsonText(["model": "flux", "prompt": "a fox", "user": "carol"])
        let first = try await server.send("POST", "/v1/jobs", json: body)
        #expect(first.status == 202, "\(first)")
        let second = try await server.send("POST", "/v1/jobs", json: body)
        expectError(second, 429, "rate_limited", "second enqueue within the window")
        let retryAfter = second.header("Retry-After").flatMap { Int($0) }
        #expect(retryAfter.map { (1...60).contains($0) } == true, "Retry-After must be whole seconds within the window: \(second.headers)")
        let other = try await server.send("POST", "/v1/jobs", json: try jsonText(["model": "flux", "prompt": "a fox", "user": "dave"]))
        #expect(other.status == 202, "another user: \(other)")
        let queues = try await server.json("/v1/queues")
        #expect(queues["flux"]?["pending"] == .integer(2), "\(queues)")
    }
}
