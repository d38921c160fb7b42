@testable import ImageQueue
import RedisClient
import Testing
import TestSupport

/// Each Lua script called directly, as a client in another language would, with the
/// error codes of docs/PROTOCOL.md.
@Suite(.runsClients) struct ScriptTests {
    struct Caller {
        let redis: RedisConnection
        let keys: QueueKeys

        func call(_ name: String, model: String = "flux", extraKeys: [String] = [], _ arguments: [String]) async -> RESPValue {
            let script = RedisScript(name: name, source: ImageQueueScripts.sources[name]!)
            let command = RedisCommand.script(script, keys: keys.scriptKeys(model) + extraKeys,
                                              arguments: [model, keys.events(model)] + arguments)
            return (try? await redis.pipeline([command]).first) ?? .error("CONNECTION failed")
        }

        func enqueue(_ id: String, prompt: String = "p") async -> RESPValue {
            await call("enqueueJob", [id, #"{"prompt":"\#(prompt)","user":"u"}"#, "3", "0"])
        }
    }

    func caller() throws -> Caller {
        Caller(redis: runInTest(RedisConnection(configuration: try RedisConfiguration(url: TestEnvironment.redisURL()))),
               keys: QueueKeys(prefix: TestEnvironment.uniquePrefix("s")))
    }

    func code(_ value: RESPValue) -> String? {
        if case .error(let text) = value { return text.split(separator: " ").first.map(String.init) }
        return nil
    }

    @Test func enqueueRefusesAnUnknownPriorityAndSetPausedAnUnknownState() async throws {
        let caller = try caller()
        defer { caller.redis.close() }
        let reply = await caller.call("enqueueJob", ["flux-01rawpriority", #"{"prompt":"p","user":"u","priority":"urgent"}"#, "3", "0"])
        #expect(code(reply) == "BAD_REQUEST", "\(reply)")
        #expect(try await caller.redis.send("EXISTS", caller.keys.jobPrefix("flux") + "flux-01rawpriority").int == 0)
        #expect(try await caller.redis.send("ZCARD", caller.keys.pending("flux")).int == 0)
        // The three words are accepted; `normal` is stored as no field at all.
        for (index, level) in ["high", "normal", "low"].enumerated() {
            #expect(await caller.call("enqueueJob", ["flux-01level\(index)", #"{"prompt":"p","user":"u","priority":"\#(level)"}"#, "3", "0"]).array?.count == 4)
        }
        #expect(try await caller.redis.send("HGET", caller.keys.jobPrefix("flux") + "flux-01level1", "priority") == .null)
        #expect(try await caller.redis.send("ZSCORE", caller.keys.pending("flux"), "flux-01level0").string == "-999999999999999")
        #expect(try await caller.redis.send("ZSCORE", caller.keys.pending("flux"), "flux-01level2").string == "1000000000000003")
        #expect(code(await caller.call("setPaused", ["yes"])) == "BAD_REQUEST")
        #expect(await caller.call("setPaused", ["1"]).int == 1)
        #expect(await caller.call("claimJob", ["w", "30000"]).array?.first?.string == "paused")
    }

    @Test func everyScriptIsEmbeddedWithItsHeaderAndIncludesResolved() {
        let names = ["enqueueJob", "claimJob", "extendLease", "reportProgress", "completeJob", "failJob", "releaseJob",
                     "recoverExpired", "cancelJob", "retryDead", "purgeDead", "setConcurrency", "setPaused", "checkRateLimit",
                     "claimWebhook", "settleWebhook", "completeAndClaim"]
        #expect(Set(ImageQueueScripts.sources.keys) == Set(names))
        for (name, source) in ImageQueueScripts.sources {
            // A shebang line may come first (docs/PROTOCOL.md, "Script flags and a full Redis").
            let body = source.hasPrefix("#!lua") ? String(source.drop { $0 != "\n" }.dropFirst()) : source
            #expect(body.hasPrefix("--[[\n  \(name):"), "\(name) opens with its header")
            #expect(!source.contains("--@include"), "\(name) has its includes resolved")
        }
    }

    @Test func scriptsThatDrainAFullRedisCarryAllowOOMAndThoseThatAddWorkDoNot() {
        func shebang(_ name: String) -> String? {
            let first = ImageQueueScripts.sources[name]!.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
            return first.hasPrefix("#!") ? first : nil
        }
        for name in ["claimJob", "extendLease", "reportProgress", "completeJob", "failJob", "releaseJob", "recoverExpired",
                     "cancelJob", "purgeDead", "setConcurrency", "setPaused", "claimWebhook", "settleWebhook"] {
            #expect(shebang(name) == "#!lua flags=allow-oom", "\(name)")
        }
        // Refused up front at maxmemory: they add work (or count a request that would be refused).
        for name in ["checkRateLimit", "retryDead"] { #expect(shebang(name) == "#!lua", "\(name)") }
        // No shebang: its first write (INCR) is refused at maxmemory, an idempotent repeat still answers.
        #expect(shebang("enqueueJob") == nil)
    }

    /// A caller on a Redis of its own with `noeviction`, and a way to fill it: `maxmemory` set
    /// below what it uses, so that (as in a Redis that filled up) every command that needs
    /// memory is refused with `OOM`. Setting it back to 0 frees it.
    func fullRedisCaller() async throws -> (server: RedisServer, caller: Caller) {
        let server = try await RedisServer.launch(extraArguments: ["--maxmemory-policy", "noeviction"])
        let caller = Caller(redis: runInTest(RedisConnection(configuration: try RedisConfiguration(url: server.url))),
                            keys: QueueKeys(prefix: TestEnvironment.uniquePrefix("oom")))
        return (server, caller)
    }

    func setMaxmemory(_ s: Caller, _ bytes: String) async throws {
        _ = try await s.redis.send("CONFIG", "SET", "maxmemory", bytes)
    }

    @Test func atMaxmemoryTheWorkerScriptsRunAndNewWorkIsRefusedWithoutWriting() async throws {
        let (server, s) = try await fullRedisCaller()
        defer { _ = server }
        let request = #"{"prompt":"p","user":"u"}"#
        func job(_ id: String) -> String { s.keys.jobPrefix("flux") + id }
        func field(_ id: String, _ name: String) async throws -> String? { try await s.redis.send("HGET", job(id), name).string }
        let idem = s.keys.idempotency("flux", key: "k")
        let rateScript = RedisScript(name: "checkRateLimit", source: ImageQueueScripts.sources["checkRateLimit"]!)
        let rateKey = s.keys.rateLimit(user: "u")
        func rateLimit(_ member: String) async throws -> RESPValue {
            try await s.redis.pipeline([.script(rateScript, keys: [rateKey], arguments: ["10", "60000", member])])[0]
        }

        // Before Redis is full: five jobs (the first with an idempotency key), the first one
        // claimed and its lease passed, one request counted by the rate limit.
        #expect(await s.call("enqueueJob", extraKeys: [idem], ["flux-1", request, "3", "60000"]).array?.first?.string == "flux-1")
        for id in ["flux-2", "flux-3", "flux-4", "flux-5"] { _ = await s.enqueue(id) }
        #expect(await s.call("claimJob", ["w", "60000"]).array?[1].string == "flux-1")
        _ = try await s.redis.send("ZADD", s.keys.active("flux"), "XX", "1", "flux-1")
        #expect(try await rateLimit("r1").array?.first?.int == 1)

        try await setMaxmemory(s, "1")
        #expect(code(try await s.redis.pipeline([RedisCommand("SET", s.keys.prefix + ":probe", "x")])[0]) == "OOM",
                "Redis refuses writes now")

        // New work is refused, and nothing is written.
        #expect(code(await s.enqueue("flux-9")) == "OOM")
        #expect(try await s.redis.send("EXISTS", job("flux-9")).int == 0)
        #expect(try await s.redis.send("GET", s.keys.sequence("flux")).string == "5")
        #expect(code(try await rateLimit("r2")) == "OOM", "the rate limit is refused up front")
        #expect(try await s.redis.send("ZCARD", rateKey).int == 1, "and the refused request is not counted")
        // An idempotent repeat writes nothing: it still answers.
        let repeated = await s.call("enqueueJob", extraKeys: [idem], ["flux-10", request, "3", "60000"])
        #expect(repeated.array?.first?.string == "flux-1" && repeated.array?.last?.int == 0, "\(repeated)")

        // Everything that moves queued work forward, or removes it, runs.
        #expect(await s.call("setConcurrency", ["3"]).int == 3)
        #expect(await s.call("recoverExpired", ["10"]) == .array([.integer(1), .integer(0)]))
        let claim = await s.call("claimJob", ["w", "60000", "c1", "0", "3"])
        let claimed = claim.array ?? []
        try #require(claimed.count == 19, "\(claim)")
        #expect([claimed[1], claimed[7], claimed[13]].map(\.string) == ["flux-1", "flux-2", "flux-3"])
        let token = { (n: Int) in String(claimed[2 + 6 * n].int ?? 0) }
        #expect(await s.call("extendLease", ["flux-1", token(0), "60000", "flux-2", token(1)]).array?.count == 2)
        #expect(await s.call("reportProgress", ["flux-1", token(0), "generating", #"{"enhanced_prompt":"q"}"#]).int != nil)
        #expect(await s.call("completeJob", ["flux-1", token(0), #"{"bytes":1}"#, "60000"]).int == 1)
        #expect(try await field("flux-1", "status") == "completed")
        #expect(try await s.redis.send("PTTL", job("flux-1")).int ?? 0 > 0, "a completed job expires after its retention")
        #expect(await s.call("failJob", ["flux-2", token(1), "retry", #"{"code":"x","message":"y"}"#]).string == "requeued")
        #expect(await s.call("releaseJob", ["flux-3", token(2)]).int == 2)
        let again = await s.call("claimJob", ["w", "60000"])
        #expect(again.array?[1].string == "flux-2", "\(again)")
        let retoken = String(again.array?[2].int ?? 0)
        #expect(await s.call("failJob", ["flux-2", retoken, "permanent", #"{"code":"x","message":"y"}"#]).string == "dead")
        #expect(await s.call("cancelJob", ["flux-5", "60000"]).int == 1)
        #expect(try await field("flux-5", "status") == "cancelled")

        // Dead jobs: put back (new work) is refused, deleting runs.
        #expect(code(await s.call("retryDead", ["", "10"])) == "OOM")
        #expect(try await s.redis.send("ZCARD", s.keys.dead("flux")).int == 1, "nothing changed")
        #expect(await s.call("purgeDead", ["", "10"]).int == 1)
        #expect(try await s.redis.send("EXISTS", job("flux-2")).int == 0)

        // Memory freed: enqueueing works again.
        try await setMaxmemory(s, "0")
        #expect(await s.enqueue("flux-9").array?.first?.string == "flux-9")
        #expect(try await rateLimit("r2").array?.first?.int == 1)
    }

    @Test func enqueueJobRefusesPastTheModelsPendingCapWithoutWriting() async throws {
        let s = try caller()
        let request = #"{"prompt":"p","user":"u"}"#
        #expect(code(await s.call("enqueueJob", ["flux-1", request, "3", "0", "x"])) == "BAD_REQUEST")
        #expect(code(await s.call("enqueueJob", ["flux-1", request, "3", "0", "-1"])) == "BAD_REQUEST")
        #expect(await s.call("enqueueJob", ["flux-1", request, "3", "0", "2"]).array?.first?.string == "flux-1")
        let idem = s.keys.idempotency("flux", key: "k")
        #expect(await s.call("enqueueJob", extraKeys: [idem], ["flux-2", request, "3", "60000", "2"]).array?.first?.string == "flux-2")
        let full = await s.call("enqueueJob", ["flux-3", request, "3", "0", "2"])
        #expect(full == .error("QUEUE_FULL model flux has 2 queued jobs, its limit is 2"), "\(full)")
        #expect(try await s.redis.send("EXISTS", s.keys.jobPrefix("flux") + "flux-3").int == 0)
        #expect(try await s.redis.send("GET", s.keys.sequence("flux")).string == "2")
        // A repeat of a known idempotency key still answers its job.
        #expect(await s.call("enqueueJob", extraKeys: [idem], ["flux-4", request, "3", "60000", "2"]).array?.first?.string == "flux-2")
        // No cap: "", "0" or absent.
        #expect(await s.call("enqueueJob", ["flux-5", request, "3", "0", "0"]).array?.first?.string == "flux-5")
        #expect(await s.call("enqueueJob", ["flux-6", request, "3", "0", ""]).array?.first?.string == "flux-6")
        #expect(await s.enqueue("flux-7").array?.first?.string == "flux-7")
        // A claimed job no longer counts.
        _ = await s.call("claimJob", ["w", "60000"])
        #expect(await s.call("enqueueJob", ["flux-8", request, "3", "0", "5"]).array?.first?.string == "flux-8")
    }

    @Test func enqueueJobRejectsBadInputWithoutWriting() async throws {
        let s = try caller()
        #expect(code(await s.call("enqueueJob", ["sdxl-wrongmodel", #"{"prompt":"p","user":"u"}"#, "3", "0"])) == "BAD_REQUEST")
        #expect(code(await s.call("enqueueJob", ["flux-", #"{"prompt":"p","user":"u"}"#, "3", "0"])) == "BAD_REQUEST")
        #expect(code(await s.call("enqueueJob", ["flux-a b", #"{"prompt":"p","user":"u"}"#, "3", "0"])) == "BAD_REQUEST")
        #expect(code(await s.call("enqueueJob", ["flux-1", #"["prompt"]"#, "3", "0"])) == "BAD_REQUEST")
        #expect(code(await s.call("enqueueJob", ["flux-1", #"{"prompt":"","user":"u"}"#, "3", "0"])) == "BAD_REQUEST")
        #expect(code(await s.call("enqueueJob", ["flux-1", #"{"prompt":"p"}"#, "3", "0"])) == "BAD_REQUEST")
        #expect(code(await s.call("enqueueJob", ["flux-1", #"{"prompt":"p","user":"u"}"#, "0", "0"])) == "BAD_REQUEST")
        #expect(code(await s.call("enqueueJob", ["flux-1", #"{"prompt":"p","user":"u"}"#, "inf", "0"])) == "BAD_REQUEST")
        let idem = s.keys.idempotency("flux", key: "k")
        #expect(code(await s.call("enqueueJob", extraKeys: [idem], ["flux-1", #"{"prompt":"p","user":"u"}"#, "3", "1.5"])) == "BAD_REQUEST")
        #expect(try await s.redis.send("KEYS", "\(s.keys.prefix):*").array?.isEmpty == true)

        #expect(await s.enqueue("flux-1").array?.first?.string == "flux-1")
        #expect(code(await s.enqueue("flux-1")) == "EXISTS")
    }

    @Test func claimJobAnswersFullEmptyAndBadLease() async throws {
        let s = try caller()
        #expect(await s.call("claimJob", ["w", "1000"]) == .array([.bulk(Array("empty".utf8))]))
        #expect(code(await s.call("claimJob", ["w", "0"])) == "BAD_REQUEST")
        #expect(code(await s.call("claimJob", ["", "1000"])) == "BAD_REQUEST")
        _ = await s.enqueue("flux-1")
        _ = await s.enqueue("flux-2")
        let claim = await s.call("claimJob", ["w", "1000"])
        #expect(claim.array?.first?.string == "ok" && claim.array?[1].string == "flux-1")
        #expect(await s.call("claimJob", ["w", "1000"]) == .array([.bulk(Array("full".utf8))]))
    }

    @Test func claimJobRepeatedWithItsClaimIdAnswersTheJobItClaimed() async throws {
        let s = try caller()
        _ = await s.enqueue("flux-1")
        _ = await s.enqueue("flux-2")
        let job = s.keys.jobPrefix("flux") + "flux-1"
        let first = await s.call("claimJob", ["w", "1000", "w:c1"])
        #expect(first.array?.first?.string == "ok" && first.array?[1].string == "flux-1")
        let rev = try await s.redis.send("HGET", job, "rev")
        let before = try #require(try await s.redis.send("ZSCORE", s.keys.active("flux"), "flux-1").string.flatMap(Double.init))

        // Its answer was lost: the same call again answers the same job, token and attempt
        // (not "full"), renews the lease, and takes no new token and sends no event.
        let again = await s.call("claimJob", ["w", "60000", "w:c1", "1"])
        #expect(again == first)
        #expect(try await s.redis.send("HGET", job, "rev") == rev)
        #expect(try await s.redis.send("GET", s.keys.fence("flux")) == .bulk(Array("1".utf8)))
        let after = try #require(try await s.redis.send("ZSCORE", s.keys.active("flux"), "flux-1").string.flatMap(Double.init))
        #expect(after >= before + 50_000)

        // Another claim id, or the same id from another worker, is a new claim: the model is full.
        let full = RESPValue.array([.bulk(Array("full".utf8))])
        #expect(await s.call("claimJob", ["w", "1000", "w:c2", "1"]) == full)
        #expect(await s.call("claimJob", ["v", "1000", "w:c1", "1"]) == full)
        #expect(await s.call("claimJob", ["w", "1000", "w:c1"]) == full, "only a repeat looks the claim id up")
        #expect(await s.call("claimJob", ["w", "1000"]) == full)

        // Once the job has left `active`, the id names nothing any more: a new claim.
        let token = try #require(first.array?[2].string)
        let result = #"{"content_type":"image/png","bytes":1,"store":"directory"}"#
        #expect(await s.call("completeJob", ["flux-1", token, result, "0"]) == .integer(1))
        let next = await s.call("claimJob", ["w", "1000", "w:c1"])
        #expect(next.array?[1].string == "flux-2" && next.array?[2] == .integer(2))
    }

    /// Batches: claimJob's ARGV[7] takes several jobs in queue order, up to the concurrency
    /// limit; extendLease and completeJob take several jobs and answer each one alone.
    @Test func completeAndClaimCompletesFencedAndClaimsTheNextInOneCall() async throws {
        let s = try caller()
        for index in 1...3 { _ = await s.enqueue("flux-\(index)") }
        let first = try #require(await s.call("claimJob", ["w", "30000", "w:c0", "0", "1"]).array)
        let token = try #require(first[2].int)
        let result = #"{"content_type":"image/png","bytes":1,"store":"directory"}"#
        #expect(code(await s.call("completeAndClaim", ["w", "30000", "w:c1", "0", "1", "0"])) == "BAD_REQUEST", "no completion")
        #expect(code(await s.call("completeAndClaim", ["", "30000", "w:c1", "0", "1", "0", "flux-1", "\(token)", result])) == "BAD_REQUEST")
        // A wrong token: that completion is refused, and the claim finds the model full.
        let refused = try #require(await s.call("completeAndClaim", ["w", "30000", "w:c1", "0", "1", "0", "flux-1", "999", result]).array)
        #expect(code(refused[0].array?[0] ?? .null) == "STALE_TOKEN")
        #expect(refused[1] == .array([.bulk(Array("full".utf8))]))
        // The right token: completed, and the next job claimed with a new token, in order.
        let both = try #require(await s.call("completeAndClaim", ["w", "30000", "w:c2", "0", "1", "0", "flux-1", "\(token)", result]).array)
        #expect(both[0] == .array([.integer(1)]))
        let claim = try #require(both[1].array)
        #expect(claim.count == 7 && claim[0].string == "ok" && claim[1].string == "flux-2" && (claim[2].int ?? 0) > token)
        #expect(try await s.redis.send("HGET", s.keys.meta("flux"), "completed_total").int == 1)
        #expect(try await s.redis.send("HGET", s.keys.job(JobID("flux-1")), "status").string == "completed")
        #expect(try await s.redis.send("HGET", s.keys.job(JobID("flux-2")), "status").string == "enhancing")
        // A repeat of that call (its answer lost) answers the same claim, and the completion as done.
        let again = try #require(await s.call("completeAndClaim", ["w", "30000", "w:c2", "1", "1", "0", "flux-1", "\(token)", result]).array)
        #expect(again[0] == .array([.integer(1)]) && again[1] == both[1])
        #expect(try await s.redis.send("HGET", s.keys.meta("flux"), "completed_total").int == 1)
        // Paused: the completion is recorded, nothing is claimed.
        _ = await s.call("setPaused", ["1"])
        let second = try #require(claim[2].int)
        let paused = try #require(await s.call("completeAndClaim", ["w", "30000", "w:c3", "0", "1", "0", "flux-2", "\(second)", result]).array)
        #expect(paused[0] == .array([.integer(1)]) && paused[1] == .array([.bulk(Array("paused".utf8))]))
        #expect(try await s.redis.send("ZCARD", s.keys.pending("flux")).int == 1)
    }

    @Test func enqueueJobTakesABatchAndAnswersEachJobAlone() async throws {
        let s = try caller()
        _ = await s.enqueue("flux-0")
        let ok = #"{"prompt":"p","user":"u"}"#
        let replies = try #require(await s.call("enqueueJob", [
            "flux-1", ok, "3", "0", "4",
            "flux-2", #"{"prompt":"p","user":"u","priority":"high"}"#,
            "flux-0", ok,              // exists already
            "flux-1", ok,              // twice in the batch
            "sdxl-9", ok,              // another model's id
            "flux-3", #"{"user":"u"}"#,  // no prompt
            "flux-4", ok,
            "flux-5", ok,              // over the cap of 4 queued jobs
        ]).array)
        #expect(replies.count == 8)
        #expect(replies[0].array?.first?.string == "flux-1" && replies[6].array?.first?.string == "flux-4")
        #expect(code(replies[2]) == "EXISTS" && code(replies[3]) == "EXISTS")
        #expect(code(replies[4]) == "BAD_REQUEST" && code(replies[5]) == "BAD_REQUEST")
        #expect(code(replies[7]) == "QUEUE_FULL")
        // Positions as the queue holds them after the call: the high job first.
        #expect(replies[1].array?[2].int == 1)
        #expect(replies[0].array?[2].int == 3 && replies[6].array?[2].int == 4)
        let pending = try await s.redis.send("ZRANGE", s.keys.pending("flux"), "0", "-1").array?.compactMap(\.string)
        #expect(pending == ["flux-2", "flux-0", "flux-1", "flux-4"])
        // A queued job's hash holds only what it needs, in Redis' compact encoding.
        let hash = try await s.redis.send("HGETALL", s.keys.job(JobID("flux-4"))).array?.count ?? 0
        #expect(hash == 2 * 7)
        #expect(try await s.redis.send("OBJECT", "ENCODING", s.keys.job(JobID("flux-4"))).string == "listpack")
    }

    @Test func claimExtendAndCompleteTakeSeveralJobsAndAnswerEachAlone() async throws {
        let s = try caller()
        for index in 1...5 { _ = await s.enqueue("flux-\(index)") }
        _ = await s.call("setConcurrency", ["3"])
        #expect(code(await s.call("claimJob", ["w", "30000", "w:c1", "0", "0"])) == "BAD_REQUEST")
        #expect(code(await s.call("claimJob", ["w", "30000", "w:c1", "0", "1001"])) == "BAD_REQUEST")
        let claim = try #require(await s.call("claimJob", ["w", "30000", "w:c1", "0", "10"]).array)
        // Three of five: the limit, not the ten asked for; six fields each, in queue order.
        #expect(claim.count == 1 + 3 * 6)
        #expect(stride(from: 1, to: claim.count, by: 6).map { claim[$0].string } == ["flux-1", "flux-2", "flux-3"])
        let tokens = stride(from: 2, to: claim.count, by: 6).compactMap { claim[$0].int }
        #expect(tokens.count == 3 && Set(tokens).count == 3 && tokens == tokens.sorted())
        #expect(await s.call("claimJob", ["w", "30000", "w:c2", "0", "10"]) == .array([.bulk(Array("full".utf8))]))
        // A repeat of the lost call answers the same three jobs again.
        let again = try #require(await s.call("claimJob", ["w", "30000", "w:c1", "1", "10"]).array)
        #expect(again == claim)

        let t = tokens.map(String.init)
        let leases = try #require(await s.call("extendLease", ["flux-1", t[0], "60000", "flux-2", "999", "flux-3", t[2]]).array)
        #expect(leases.count == 3 && leases[0].int != nil && leases[2].int != nil)
        #expect(code(leases[1]) == "STALE_TOKEN")

        let result = #"{"content_type":"image/png","bytes":1,"store":"directory"}"#
        let done = try #require(await s.call("completeJob", ["flux-1", t[0], result, "0", "flux-2", t[1], "[1]",
                                                             "flux-3", "999", result, "flux-9", "1", result]).array)
        #expect(done.count == 4)
        #expect(done[0] == .integer(1))
        #expect(code(done[1]) == "BAD_REQUEST")
        #expect(code(done[2]) == "STALE_TOKEN")
        #expect(code(done[3]) == "NOT_FOUND")
        #expect(try await s.redis.send("HGET", s.keys.meta("flux"), "completed_total").int == 1)
        #expect(try await s.redis.send("ZCARD", s.keys.active("flux")).int == 2)
        // The refused ones still belong to their owner, who completes them together.
        let rest = try #require(await s.call("completeJob", ["flux-2", t[1], result, "0", "flux-3", t[2], result]).array)
        #expect(rest == [.integer(1), .integer(1)])
        let event = try #require(try await s.redis.send("HGET", s.keys.job(JobID("flux-3")), "event").string)
        let parsed = try ParsedJSON.parse(event)
        #expect(parsed["status"]?.string == "completed" && parsed["result"]?["bytes"]?.integer == 1 && parsed["worker"]?.string == "w")
    }

    @Test func ownerScriptsAnswerNotFoundStaleTokenAndBadRequest() async throws {
        let s = try caller()
        _ = await s.enqueue("flux-1")
        let claim = await s.call("claimJob", ["w", "30000"])
        let token = try #require(claim.array?[2].string)
        let result = #"{"content_type":"image/png","bytes":1,"store":"directory"}"#
        let error = #"{"code":"c","message":"m"}"#
        let owner: [(String, [String])] = [
            ("extendLease", ["1000"]), ("reportProgress", ["generating", "{}"]), ("completeJob", [result, "0"]),
            ("failJob", ["permanent", error]), ("releaseJob", []),
        ]
        for (name, rest) in owner {
            #expect(code(await s.call(name, ["flux-missing", token] + rest)) == "NOT_FOUND", "\(name)")
            #expect(code(await s.call(name, ["flux-1", "999999"] + rest)) == "STALE_TOKEN", "\(name)")
            #expect(code(await s.call(name, ["flux-1", ""] + rest)) == "STALE_TOKEN", "\(name)")
        }
        #expect(code(await s.call("extendLease", ["flux-1", token, "-5"])) == "BAD_REQUEST")
        #expect(code(await s.call("reportProgress", ["flux-1", token, "completed", "{}"])) == "BAD_REQUEST")
        #expect(code(await s.call("reportProgress", ["flux-1", token, "generating", "[7,8]"])) == "BAD_REQUEST")
        #expect(code(await s.call("completeJob", ["flux-1", token, "[1]", "0"])) == "BAD_REQUEST")
        #expect(code(await s.call("completeJob", ["flux-1", token, result, "1.5"])) == "BAD_REQUEST")
        #expect(code(await s.call("failJob", ["flux-1", token, "sometimes", error])) == "BAD_REQUEST")
        #expect(code(await s.call("failJob", ["flux-1", token, "retry", #"{"code":1}"#])) == "BAD_REQUEST")
        // None of the refusals changed the job: the owner still completes it.
        #expect(await s.call("completeJob", ["flux-1", token, result, "0"]) == .integer(1))
        // A queued job that was never claimed is not NOT_FOUND but STALE_TOKEN.
        _ = await s.enqueue("flux-2")
        #expect(code(await s.call("extendLease", ["flux-2", "1", "1000"])) == "STALE_TOKEN")
    }

    @Test func cancelRetryPurgeRecoverAndConcurrencyValidateTheirArguments() async throws {
        let s = try caller()
        _ = await s.enqueue("flux-1")
        #expect(code(await s.call("cancelJob", ["flux-nope", "0"])) == "NOT_FOUND")
        #expect(code(await s.call("cancelJob", ["flux-1", "x"])) == "BAD_REQUEST")
        #expect(await s.call("cancelJob", ["flux-1", "0"]) == .integer(1))
        #expect(code(await s.call("cancelJob", ["flux-1", "0"])) == "NOT_QUEUED")
        for name in ["retryDead", "purgeDead"] {
            #expect(code(await s.call(name, ["", "0"])) == "BAD_REQUEST", "\(name)")
            #expect(code(await s.call(name, ["flux-1", "10"])) == "NOT_FOUND", "\(name)")
            #expect(await s.call(name, ["", "10"]) == .integer(0), "\(name)")
        }
        #expect(code(await s.call("recoverExpired", ["0"])) == "BAD_REQUEST")
        #expect(await s.call("recoverExpired", ["10"]) == .array([.integer(0), .integer(0)]))
        #expect(code(await s.call("setConcurrency", ["0"])) == "BAD_REQUEST")
        #expect(code(await s.call("setConcurrency", ["2.5"])) == "BAD_REQUEST")
        #expect(await s.call("setConcurrency", ["4"]) == .integer(4))
        #expect(try await s.redis.send("HGET", s.keys.meta("flux"), "concurrency").int == 4)
    }

    @Test func checkRateLimitCountsAWindowAndSaysWhenToRetry() async throws {
        let s = try caller()
        let script = RedisScript(name: "checkRateLimit", source: ImageQueueScripts.sources["checkRateLimit"]!)
        let key = s.keys.rateLimit(user: "u1")
        func check(_ member: String, limit: String = "2", window: String = "60000") async throws -> RESPValue {
            try await s.redis.pipeline([.script(script, keys: [key], arguments: [limit, window, member])])[0]
        }
        #expect(try await check("a") == .array([.integer(1), .integer(1), .integer(0)]))
        #expect(try await check("b") == .array([.integer(1), .integer(0), .integer(0)]))
        let refused = try await check("c").array ?? []
        #expect(refused.first == .integer(0))
        // When the oldest request leaves the window: within the 60 s window, most of it left.
        #expect((refused.last?.int ?? 0) > 30_000 && (refused.last?.int ?? 0) <= 60_000)
        #expect(code(try await check("d", limit: "0")) == "BAD_REQUEST")
        #expect(code(try await check("d", window: "1.5")) == "BAD_REQUEST")
        #expect(code(try await check("")) == "BAD_REQUEST")
        #expect(try await s.redis.send("PTTL", key).int ?? 0 > 0)
    }

    @Test func theDoorbellHoldsAtMostOneToken() async throws {
        let s = try caller()
        for index in 0..<20 { _ = await s.enqueue("flux-\(index)") }
        #expect(try await s.redis.send("LLEN", s.keys.wake("flux")).int == 1)
        try await s.redis.send("DEL", s.keys.wake("flux"))
        // The recovery sweep repairs a lost token while work is waiting and a slot is free.
        _ = await s.call("recoverExpired", ["10"])
        #expect(try await s.redis.send("LLEN", s.keys.wake("flux")).int == 1)
        // No token while the model is full.
        try await s.redis.send("DEL", s.keys.wake("flux"))
        _ = await s.call("claimJob", ["w", "30000"])
        _ = await s.call("recoverExpired", ["10"])
        #expect(try await s.redis.send("LLEN", s.keys.wake("flux")).int == 0)
    }
}
