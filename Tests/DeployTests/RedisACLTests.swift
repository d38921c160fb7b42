import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// ops/redis.conf and the ACL users of ops/redis-users.acl, on a real redis-server: the
/// restricted `worker` user runs every part of ImageQueue (CLI, worker, serve, telegram),
/// and may do nothing else.
@Suite("Redis ACL: ops/redis.conf and the worker user")
struct RedisACLTests {
    /// `imagequeue ARGUMENTS` as the worker user through IMAGEQUEUE_REDIS_URL (key prefix
    /// `iq`, the one the ACL allows), with a rate limit so that checkRateLimit runs too.
    static func imagequeue(_ redis: ACLRedis, _ arguments: [String], environment: [String: String] = [:],
                           url: String? = nil) async throws -> CommandResult {
        try await runProgram(try TestEnvironment.imagequeueBinary(), arguments,
                             environment: Self.environment(redis, environment, url: url), timeout: 60)
    }

    static func environment(_ redis: ACLRedis, _ extra: [String: String] = [:], url: String? = nil) -> [String: String] {
        TestEnvironment.imagequeueEnvironment(["IMAGEQUEUE_REDIS_URL": url ?? redis.workerURL, "IMAGEQUEUE_RATE_LIMIT": "100/60"]
            .merging(extra) { $1 })
    }

    static func start(_ redis: ACLRedis, _ arguments: [String], environment: [String: String] = [:]) throws -> SpawnedProcess {
        try SpawnedProcess(try TestEnvironment.imagequeueBinary().path, arguments,
                           environment: ProcessInfo.processInfo.environment.merging(Self.environment(redis, environment)) { $1 })
    }

    static func enqueue(_ redis: ACLRedis, model: String, prompt: String, extra: [String] = []) async throws -> String {
        let result = try await imagequeue(redis, ["enqueue", "--json", "--model", model, "--user", "alice", "--no-enhance"] + extra + [prompt])
        guard result.status == 0, let id = try ParsedJSON.parse(result.stdout)["id"]?.string else {
            throw TestSetupError("enqueue exited \(result.status): \(result.stderr)")
        }
        return id
    }

    static func status(_ redis: ACLRedis, _ id: String) async throws -> ParsedJSON {
        let result = try await imagequeue(redis, ["status", "--json", id])
        guard result.status == 0 else { throw TestSetupError("status exited \(result.status): \(result.stderr)") }
        return try ParsedJSON.parse(result.stdout)
    }

    /// Polls until the job has `wanted` status; returns the last status either way.
    @discardableResult
    static func waitForStatus(_ redis: ACLRedis, _ id: String, _ wanted: String, timeout: Double = 30) async throws -> ParsedJSON {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        var last = try await status(redis, id)
        while last["status"]?.string != wanted, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            last = try await status(redis, id)
        }
        return last
    }

    /// What Redis writes when an ACL refuses something, in any of its forms.
    static let refusals = ["NOPERM", "no permissions", "can't run this command", "can't access"]

    static func expectNoRefusal(_ output: String, _ who: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for refusal in refusals {
            #expect(!output.contains(refusal), "\(who) was refused something:\n\(output)", sourceLocation: sourceLocation)
        }
    }

    @Test("ops/redis.conf is in force: AOF always, noeviction, the three users, nothing without a login")
    func configurationInForce() async throws {
        let redis = try await ACLRedis.start()
        for (name, wanted) in [("appendonly", "yes"), ("appendfsync", "always"), ("maxmemory-policy", "noeviction"),
                               ("protected-mode", "yes")] {
            let result = try await redis.cli(user: "admin", password: redis.adminPassword, ["CONFIG", "GET", name])
            #expect(result.status == 0 && result.stdout == "\(name)\n\(wanted)\n", "\(name): \(result.stdout)\(result.stderr)")
        }
        let users = try await redis.cli(user: "admin", password: redis.adminPassword, ["ACL", "USERS"])
        #expect(users.stdout.split(separator: "\n").sorted() == ["admin", "default", "worker"], "\(users.stdout)")
        let anonymous = try await redis.cli(user: nil, password: nil, ["PING"])
        #expect(anonymous.status != 0 && anonymous.stderr.contains("NOAUTH"), "\(anonymous.stdout)\(anonymous.stderr)")
        let wrong = try await redis.cli(user: "worker", password: "not-the-password-0000", ["PING"])
        #expect(wrong.status != 0 && !wrong.stdout.contains("PONG"), "\(wrong.stdout)\(wrong.stderr)")
        await redis.stop()
    }

    @Test("the generated users file holds each password's SHA-256, never the password, readable by its owner only")
    func usersFileHoldsHashesOnly() async throws {
        let redis = try await ACLRedis.start()
        let path = redis.directory.appendingPathComponent("users.acl").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains(redis.workerPassword) && !text.contains(redis.adminPassword))
        #expect(!text.contains("${") && !text.contains(">"), "a placeholder or a clear-text password is left: \(text)")
        let hash = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"),
                                        ["python3", "-c", "import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode()).hexdigest())",
                                         redis.workerPassword])
        let workerLine = text.split(separator: "\n").first { $0.hasPrefix("user worker ") } ?? ""
        #expect(workerLine.contains("#" + hash.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(workerLine)")
        let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o600, "mode \(String(mode ?? -1, radix: 8))")
        await redis.stop()
    }

    @Test("redis-users.sh refuses a missing, short or URL-unsafe password with one line naming the variable, never its value",
          arguments: [
              (["REDIS_ADMIN_PASSWORD": "a-long-enough-admin-password"], "REDIS_WORKER_PASSWORD is not set (see .env.example)"),
              (["REDIS_ADMIN_PASSWORD": "short-pw", "REDIS_WORKER_PASSWORD": "a-long-enough-worker-password"],
               "REDIS_ADMIN_PASSWORD is shorter than 16 characters"),
              (["REDIS_ADMIN_PASSWORD": "a-long-enough-admin-password", "REDIS_WORKER_PASSWORD": "has@and:in-a-url-password"],
               "REDIS_WORKER_PASSWORD may hold only letters, digits and . _ ~ -"),
          ])
    func usersScriptRefusesBadPasswords(_ environment: [String: String], _ message: String) async throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("iq-users-\(UUID().uuidString).acl").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let result = try await ACLRedis.writeUsers(to: output, environment: environment)
        #expect(result.status == 2)
        #expect(result.stderr == "redis-users.sh: \(message)\n", "\(result.stderr)")
        for value in environment.values { #expect(!result.stderr.contains(value) && !result.stdout.contains(value)) }
        #expect(!FileManager.default.fileExists(atPath: output), "a partial users file was left behind")
    }

    @Test("the worker user cannot flush, configure, read other keys or channels, or escape through Lua")
    func workerUserIsConfined() async throws {
        let redis = try await ACLRedis.start()
        let worker = { (arguments: [String]) in try await redis.cli(user: "worker", password: redis.workerPassword, arguments) }
        // Logged in, and allowed its own keys: the refusals below are the ACL's, not a failed login.
        let own = try await worker(["SET", "iq:acl-test", "1"])
        #expect(own.status == 0 && own.stdout == "OK\n", "\(own.stdout)\(own.stderr)")
        // What the client sends for Sentinel (ROLE) and IMAGEQUEUE_REDIS_WAIT_REPLICAS (WAIT).
        for arguments in [["ROLE"], ["WAIT", "0", "10"]] {
            let allowed = try await worker(arguments)
            #expect(allowed.status == 0 && !allowed.stdout.contains("NOPERM") && !allowed.stderr.contains("NOPERM"),
                    "\(arguments): \(allowed.stdout)\(allowed.stderr)")
        }

        let refused: [[String]] = [
            ["FLUSHALL"], ["FLUSHDB"], ["KEYS", "*"], ["SCAN", "0"], ["CONFIG", "GET", "*"], ["CONFIG", "SET", "appendonly", "no"],
            ["ACL", "LIST"], ["SHUTDOWN", "NOSAVE"], ["SELECT", "1"], ["SCRIPT", "FLUSH"],
            ["EVAL", "return 1", "0"], ["BGREWRITEAOF"], ["MONITOR"],
            ["SET", "other:key", "1"], ["GET", "other:key"], ["DEL", "other:key"], ["HGETALL", "bull:queue"],
            ["PUBLISH", "other-channel", "x"],
            ["EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "1", "other:key"],
        ]
        for arguments in refused {
            let result = try await worker(arguments)
            #expect(result.status != 0 && result.stderr.hasPrefix("NOPERM"), "\(arguments): \(result.stdout)\(result.stderr)")
        }
        // A script the worker loads itself may still only touch what the worker may.
        let loaded = try await worker(["SCRIPT", "LOAD", "return redis.call('GET', 'other:key')"])
        let sha = loaded.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(loaded.status == 0 && sha.count == 40, "\(loaded.stdout)\(loaded.stderr)")
        let escaped = try await worker(["EVALSHA", sha, "1", "iq:acl-test"])
        #expect(escaped.status != 0 && escaped.stderr.contains("can't access at least one of the keys"), "\(escaped.stdout)\(escaped.stderr)")
        // The key is untouched by any of it.
        let admin = try await redis.cli(user: "admin", password: redis.adminPassword, ["EXISTS", "other:key", "iq:acl-test"])
        #expect(admin.stdout == "1\n", "\(admin.stdout)")
        await redis.stop()
    }

    @Test("a wrong password: one line naming the refused credentials, exit 2, the password never printed")
    func wrongPassword() async throws {
        let redis = try await ACLRedis.start()
        let wrongPassword = "wrong-\(ACLRedis.randomPassword())"
        let url = "redis://worker:\(wrongPassword)@127.0.0.1:\(redis.port)"
        for arguments in [["queues"], ["status", "flux-abc"], ["enqueue", "--model", "flux", "--user", "alice", "a fox"]] {
            let result = try await Self.imagequeue(redis, arguments, url: url)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
            #expect(lines.count == 1 && result.stderr.contains("refused the credentials"), "\(arguments): \(result.stderr)")
            #expect(result.stdout.isEmpty)
            for secret in [wrongPassword, redis.workerPassword] {
                #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret), "\(arguments): \(result.stderr)")
            }
        }
        await redis.stop()
    }

    @Test("a worker, serve and telegram with a wrong password stop at start with one line and exit 2, the password never printed")
    func servicesWithWrongPassword() async throws {
        let redis = try await ACLRedis.start()
        let wrongPassword = "wrong-\(ACLRedis.randomPassword())"
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("iq-acl-wrong-\(redis.port)")
        defer { try? FileManager.default.removeItem(at: output) }
        let url = "redis://worker:\(wrongPassword)@127.0.0.1:\(redis.port)"
        let services: [(URL, [String], [String: String])] = [
            (try TestEnvironment.imagequeueBinary(), ["worker", "--models", "flux", "--backend", "placeholder", "--output-dir", output.path], [:]),
            (try TestEnvironment.standaloneWorkerBinary(), ["--models", "flux", "--backend", "placeholder", "--output-dir", output.path], [:]),
            (try TestEnvironment.imagequeueBinary(), ["serve", "--port", "\(try RedisServer.freePort())"],
             ["IMAGEQUEUE_API_TOKEN": "token-for-the-acl-test"]),
            (try TestEnvironment.imagequeueBinary(), ["telegram"],
             ["TELEGRAM_BOT_TOKEN": "123456:acl-test", "TELEGRAM_API_URL": "http://127.0.0.1:9"]),
        ]
        for (binary, arguments, extra) in services {
            let result = try await runProgram(binary, arguments, environment: Self.environment(redis, extra, url: url), timeout: 60)
            let lines = result.stderr.split(separator: "\n").filter { $0.contains("refused the credentials") }
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(lines.count == 1 && lines[0].contains("redis://worker:***@"), "\(arguments): \(result.stderr)")
            for secret in [wrongPassword, redis.workerPassword] {
                #expect(!result.stdout.contains(secret) && !result.stderr.contains(secret), "\(arguments) printed a password")
            }
        }
        await redis.stop()
    }

    @Test("as the worker user: enqueue, watch, a worker to completion, cancel, dead list, retry and purge, queues, workers, concurrency")
    func workerUserRunsTheQueue() async throws {
        let redis = try await ACLRedis.start()
        let fake = try await FakeBackends.start()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("iq-acl-images-\(redis.port)")
        defer { try? FileManager.default.removeItem(at: output) }

        // Two SDXL requests refused (401: permanent, straight to the dead list); Flux slow
        // enough for a heartbeat to extend the lease mid-job.
        try await fake.script("sdxl", [["status": 401], ["status": 401]])
        try await fake.setDelay("flux", milliseconds: 1500)
        let fluxJob = try await Self.enqueue(redis, model: "flux", prompt: "a fox under ACL", extra: ["--idempotency-key", "acl-1"])
        let again = try await Self.enqueue(redis, model: "flux", prompt: "a fox under ACL", extra: ["--idempotency-key", "acl-1"])
        #expect(again == fluxJob, "the idempotency key did not return the first job")
        let watch = try Self.start(redis, ["watch", "--json", fluxJob])
        #expect(await watch.waitForOutput(containing: "\"queued\""), "watch: \(watch.output)")

        let cancelled = try await Self.enqueue(redis, model: "sdxl", prompt: "never run")
        let cancel = try await Self.imagequeue(redis, ["cancel", cancelled])
        #expect(cancel.status == 0, "cancel: \(cancel.stderr)")
        let dead1 = try await Self.enqueue(redis, model: "sdxl", prompt: "refused once")
        let dead2 = try await Self.enqueue(redis, model: "sdxl", prompt: "refused twice")

        let worker = try Self.start(redis, ["worker", "--models", "flux,sdxl", "--backend", "http", "--lease-seconds", "3",
                                            "--output-dir", output.path, "--id", "acl-worker"],
                                    environment: fake.environment().merging(["IMAGEQUEUE_GENERATION_ATTEMPTS": "1"]) { $1 })
        let completed = try await Self.waitForStatus(redis, fluxJob, "completed")
        #expect(completed["status"]?.string == "completed", "\(completed)\nworker:\n\(worker.output)")
        #expect(try await watch.waitForExit() == .exited(0), "watch: \(watch.output)")
        #expect(watch.stdout.contains("\"completed\""), "watch: \(watch.stdout)")
        for id in [dead1, dead2] {
            let dead = try await Self.waitForStatus(redis, id, "failed")
            #expect(dead["status"]?.string == "failed", "\(dead)\nworker:\n\(worker.output)")
        }
        #expect(try await Self.status(redis, cancelled)["status"]?.string == "cancelled")

        let list = try await Self.imagequeue(redis, ["dead", "list", "--model", "sdxl"])
        #expect(list.status == 0 && list.stdout.contains(dead1) && list.stdout.contains(dead2), "\(list.stdout)\(list.stderr)")
        let retry = try await Self.imagequeue(redis, ["dead", "retry", "--model", "sdxl", "--id", dead1])
        #expect(retry.status == 0, "retry: \(retry.stderr)")
        let purge = try await Self.imagequeue(redis, ["dead", "purge", "--model", "sdxl", "--id", dead2])
        #expect(purge.status == 0, "purge: \(purge.stderr)")
        let retried = try await Self.waitForStatus(redis, dead1, "completed")
        #expect(retried["status"]?.string == "completed", "\(retried)\nworker:\n\(worker.output)")

        for arguments in [["queues", "--json"], ["workers", "--json"], ["concurrency", "--model", "flux", "2"],
                          ["concurrency", "--model", "flux", "--json"]] {
            let result = try await Self.imagequeue(redis, arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            Self.expectNoRefusal(result.stdout + result.stderr, "\(arguments)")
        }
        let workers = try await Self.imagequeue(redis, ["workers", "--json"])
        #expect(workers.stdout.contains("acl-worker"), "\(workers.stdout)")
        // Its connections are the worker user's, named by CLIENT SETNAME.
        let clients = try await redis.cli(user: "admin", password: redis.adminPassword, ["CLIENT", "LIST"])
        #expect(clients.stdout.split(separator: "\n").contains { $0.contains("name=imagequeue-worker") && $0.contains("user=worker") },
                "\(clients.stdout)")

        worker.send(SIGTERM)
        #expect(try await worker.waitForExit() == .exited(0), "worker:\n\(worker.output)")
        Self.expectNoRefusal(worker.output, "the worker")
        #expect(!worker.output.contains(redis.workerPassword), "the worker printed the Redis password")
        await redis.stop()
    }

    @Test("serve as the worker user: ready, /metrics, enqueue over HTTP, the all-jobs event stream (PSUBSCRIBE) delivers")
    func serveRunsAsWorkerUser() async throws {
        let redis = try await ACLRedis.start()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("iq-acl-serve-\(redis.port)")
        defer { try? FileManager.default.removeItem(at: output) }
        let port = try RedisServer.freePort()
        let token = "acl-test-token-\(ACLRedis.randomPassword())"
        let serve = try Self.start(redis, ["serve", "--port", "\(port)"], environment: ["IMAGEQUEUE_API_TOKEN": token])
        #expect(await serve.waitForOutput(containing: "serving http://"), "serve: \(serve.output)")

        // Reads the event stream of every job, printing each line as it comes.
        let reader = """
            import sys, urllib.request
            with urllib.request.urlopen(sys.argv[1], timeout=60) as response:
                for line in response:
                    print(line.decode().rstrip("\\n"), flush=True)
            """
        let stream = try SpawnedProcess("/usr/bin/env", ["python3", "-c", reader, "http://127.0.0.1:\(port)/v1/events"],
                                        environment: ProcessInfo.processInfo.environment)
        #expect(await stream.waitForOutput(containing: ": stream open"), "event stream: \(stream.output)\nserve: \(serve.output)")

        let poster = """
            import json, sys, urllib.request
            url, token = sys.argv[1:3]
            for path in ("/readyz", "/v1/queues"):
                with urllib.request.urlopen(url + path, timeout=20) as response:
                    assert response.status == 200, (path, response.status)
            # What Prometheus scrapes, read from Redis as the worker user: 0 if a command were refused.
            with urllib.request.urlopen(url + "/metrics", timeout=20) as response:
                text = response.read().decode()
                up = [line.split()[1] for line in text.splitlines() if line.startswith("imagequeue_redis_up ")]
                assert [float(value) for value in up] == [1.0], text[:2000]
            body = json.dumps({"model": "flux", "prompt": "a fox over HTTP", "user": "alice", "enhance": False}).encode()
            request = urllib.request.Request(url + "/v1/jobs", data=body, method="POST",
                                             headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
            with urllib.request.urlopen(request, timeout=20) as response:
                print(json.load(response)["id"])
            """
        let posted = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"),
                                          ["python3", "-c", poster, "http://127.0.0.1:\(port)", token])
        #expect(posted.status == 0, "POST /v1/jobs: \(posted.stderr)\nserve: \(serve.output)")
        let id = posted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let worker = try Self.start(redis, ["worker", "--models", "flux", "--backend", "placeholder", "--output-dir", output.path],
                                    environment: ["IMAGEQUEUE_PLACEHOLDER_SIZE": "64"])
        #expect(await stream.waitForOutput(containing: "\"status\":\"completed\""), "event stream: \(stream.output)\nserve: \(serve.output)")
        #expect(stream.stdout.contains(id), "event stream: \(stream.stdout)")
        stream.send(SIGTERM)
        for process in [worker, serve] {
            process.send(SIGTERM)
            #expect(try await process.waitForExit() == .exited(0), "\(process.commandLine):\n\(process.output)")
            Self.expectNoRefusal(process.output, process.commandLine)
        }
        await redis.stop()
    }

    @Test("the Telegram front as the worker user: poller lease, a /image command answered with a photo")
    func telegramRunsAsWorkerUser() async throws {
        let redis = try await ACLRedis.start()
        let telegram = try await FakeTelegram.start()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("iq-acl-telegram-\(redis.port)")
        defer { try? FileManager.default.removeItem(at: output) }
        let front = try Self.start(redis, ["telegram", "--id", "acl-front", "--poll-timeout", "1", "--lease-seconds", "3",
                                           "--edit-interval", "0.2", "--chat-interval", "0.1"],
                                   environment: telegram.environment())
        let worker = try Self.start(redis, ["worker", "--models", "flux", "--backend", "placeholder", "--output-dir", output.path],
                                    environment: ["IMAGEQUEUE_PLACEHOLDER_SIZE": "64"])
        try await telegram.waitUntilPolling()
        try await telegram.sendUpdate(text: "/image=flux/a fox on Telegram")
        try await telegram.waitFor("a photo", timeout: .seconds(30)) {
            try await telegram.messages().contains { $0["kind"] as? String == "photo" }
        }
        for process in [front, worker] {
            process.send(SIGTERM)
            #expect(try await process.waitForExit() == .exited(0), "\(process.commandLine):\n\(process.output)")
            Self.expectNoRefusal(process.output, process.commandLine)
        }
        await redis.stop()
    }
}
