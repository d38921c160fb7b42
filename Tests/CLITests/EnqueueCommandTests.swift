import Foundation
import Testing
import TestSupport

@Suite("imagequeue enqueue")
struct EnqueueCommandTests {
    @Test("prints only the new job's id, <model>- and 26 lowercase characters")
    func printsJobID() async throws {
        let cli = try CLI()
        let result = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "a red fox in the snow"])
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty)
        #expect(result.stdout.hasSuffix("\n"))
        let id = result.stdout.trimmingCharacters(in: .newlines)
        #expect(id.wholeMatch(of: #/flux-[0-9a-z]{26}/#) != nil, "id: \(result.stdout.debugDescription)")

        let sdxl = try await cli.enqueue(model: "sdxl")
        #expect(sdxl.wholeMatch(of: #/sdxl-[0-9a-z]{26}/#) != nil, "id: \(sdxl)")
    }

    @Test("--json prints one object with id, model, status and the position 1, 2, 3 in turn")
    func jsonShapeAndPositions() async throws {
        let cli = try CLI()
        var ids: Set<String> = []
        for expectedPosition in 1...3 {
            let result = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "--json", "prompt \(expectedPosition)"])
            #expect(result.status == 0, "stderr: \(result.stderr)")
            #expect(result.stdout.split(separator: "\n").count == 1, "stdout: \(result.stdout)")
            let job = try ParsedJSON.parse(result.stdout)
            let id = try #require(job["id"]?.string)
            #expect(id.wholeMatch(of: #/flux-[0-9a-z]{26}/#) != nil)
            #expect(job["model"] == .string("flux"))
            #expect(job["status"] == .string("queued"))
            #expect(job["position"] == .integer(Int64(expectedPosition)))
            #expect(writesInteger(result.stdout, key: "position"))
            ids.insert(id)
        }
        #expect(ids.count == 3)
    }

    @Test("the same idempotency key returns the same job and queues it once")
    func idempotencyKey() async throws {
        let cli = try CLI()
        let first = try await cli.enqueue(options: ["--idempotency-key", "order-42"])
        let second = try await cli.enqueue(options: ["--idempotency-key", "order-42"])
        #expect(second == first)
        let repeated = try await cli.json(["enqueue", "--model", "flux", "--user", "alice", "--idempotency-key", "order-42",
                                     "--json", "a red fox in the snow"])
        #expect(repeated["id"] == .string(first))
        #expect(try await cli.queues()["flux"]?["pending"] == .integer(1))

        let other = try await cli.enqueue(options: ["--idempotency-key", "order-43"])
        #expect(other != first)
    }

    @Test("--no-enhance reaches the worker as enhance: false; the default is true")
    func noEnhance() async throws {
        let cli = try CLI()
        let worker = WorkerSteps(cli: cli)
        let plain = try await cli.enqueue(options: ["--no-enhance"])
        let enhanced = try await cli.enqueue()
        try await cli.run(["concurrency", "--model", "flux", "2"]).expectSuccess()

        let first = try await worker.claim()
        #expect(first.id == plain)
        #expect(first.request["enhance"] == .bool(false))
        let second = try await worker.claim()
        #expect(second.id == enhanced)
        #expect(second.request["enhance"] == .bool(true))
    }

    @Test("a prompt of exactly IMAGEQUEUE_MAX_PROMPT_LENGTH characters is accepted, one more is not")
    func promptLengthBoundary() async throws {
        let cli = try CLI()
        let limit = ["IMAGEQUEUE_MAX_PROMPT_LENGTH": "12"]
        let fits = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "twelve chars"], environment: limit)
        #expect(fits.status == 0, "stderr: \(fits.stderr)")
        let tooLong = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "thirteen char"], environment: limit)
        expectOneLineFailure(tooLong, status: 2)
        #expect(try await cli.queues()["flux"]?["pending"] == .integer(1))
    }

    @Test("IMAGEQUEUE_RATE_LIMIT=2/60: the third request of a user exits 3 saying when to retry; others still pass")
    func rateLimit() async throws {
        let cli = try CLI(rateLimit: "2/60")
        _ = try await cli.enqueue(user: "alice")
        _ = try await cli.enqueue(user: "alice")
        let third = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "a third fox"])
        expectOneLineFailure(third, status: 3)
        #expect(third.stderr.contains(#/(?i)(retry|try again)\D*\d+/#), "stderr: \(third.stderr)")

        let bob = try await cli.run(["enqueue", "--model", "flux", "--user", "bob", "bob's fox"])
        #expect(bob.status == 0, "stderr: \(bob.stderr)")
        #expect(try await cli.queues()["flux"]?["pending"] == .integer(3))
    }

    @Test("IMAGEQUEUE_REDIS_URL and IMAGEQUEUE_PREFIX are the defaults; --redis and --prefix win over them")
    func environmentDefaults() async throws {
        let cli = try CLI()
        let fromEnvironment = try await cli.runExactly(
            ["enqueue", "--model", "flux", "--user", "alice", "from the environment"],
            environment: ["IMAGEQUEUE_REDIS_URL": cli.redisURL, "IMAGEQUEUE_PREFIX": cli.prefix])
        #expect(fromEnvironment.status == 0, "stderr: \(fromEnvironment.stderr)")
        let id = fromEnvironment.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // Found under the same prefix given as a flag.
        #expect(try await cli.json(["status", id, "--json"])["prompt"] == .string("from the environment"))

        // Flags beat the environment: the environment names a server nobody listens on and another prefix.
        let nowhere = "redis://127.0.0.1:\(try RedisServer.freePort())"
        let result = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "from the flags"],
                                 environment: ["IMAGEQUEUE_REDIS_URL": nowhere, "IMAGEQUEUE_PREFIX": "elsewhere"])
        #expect(result.status == 0, "stderr: \(result.stderr)")
        #expect(try await cli.queues()["flux"]?["pending"] == .integer(2))
    }

    @Test("a Redis at maxmemory (noeviction): one line saying it is out of memory and nothing was queued, exit 1")
    func fullRedis() async throws {
        // maxmemory 1 byte: full from the start, every write that needs memory is refused.
        let server = try await RedisServer.launch(extraArguments: ["--maxmemory", "1", "--maxmemory-policy", "noeviction"])
        let expected = "imagequeue: Redis is out of memory (maxmemory reached): nothing was queued; try again later\n"
        // With the rate limit (its script is refused first) and without.
        for rateLimit in ["10/60", "off"] {
            let cli = try CLI(redisURL: server.url, rateLimit: rateLimit)
            let result = try await cli.run(["enqueue", "--model", "flux", "--user", "alice", "a red fox in the snow"])
            expectOneLineFailure(result, status: 1)
            #expect(result.stderr == expected, "rate limit \(rateLimit)")
            let json = try await cli.run(["enqueue", "--json", "--model", "flux", "--user", "alice", "a red fox in the snow"])
            expectOneLineFailure(json, status: 1)
            #expect(json.stderr == expected)
            #expect(try await cli.queues()["flux"]?["pending"] == .integer(0))
        }
    }
}

extension CommandResult {
    /// Expects exit status 0.
    func expectSuccess(sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(status == 0, "exit \(status), stderr: \(stderr)", sourceLocation: sourceLocation)
    }
}
