import Foundation
import Testing
import TestSupport

/// docker-compose.yml and ops/Dockerfile, checked by ops/check_deploy.py without a Docker
/// engine: the real files pass, and each kind of mistake the checker looks for is caught.
@Suite("deployment files: docker-compose.yml and ops/Dockerfile")
struct DeployFilesTests {
    static let root = TestEnvironment.packageRoot

    /// Runs `python3 ops/check_deploy.py ARGUMENTS`.
    static func check(_ arguments: [String]) async throws -> CommandResult {
        try await runProgram(URL(fileURLWithPath: "/usr/bin/env"),
                             ["python3", root.appendingPathComponent("ops/check_deploy.py").path] + arguments, timeout: 60)
    }

    /// The Compose schema committed with the project (ops/schemas, licence and origin in its
    /// README); a missing one fails the test.
    static var schema: String { root.appendingPathComponent("ops/schemas/compose-spec.json").path }

    /// Writes `text` to a new temporary file named `name` and returns its path.
    static func temporaryFile(_ name: String, _ text: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-deploy-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("docker-compose.yml is valid Compose and meets our expectations")
    func composeFilePasses() async throws {
        #expect(FileManager.default.fileExists(atPath: Self.schema), "the Compose schema is missing at \(Self.schema)")
        let result = try await Self.check(["compose", "--schema", Self.schema])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.hasPrefix("compose OK: 7 services"), "\(result.stdout)")
    }

    /// (what is changed, the text replaced, its replacement, what the checker must say).
    static let composeMistakes: [(String, String, String, String)] = [
        ("telegram outside its profile", "    profiles: [telegram]\n", "",
         "telegram must be in the profile [telegram] only"),
        ("a token written in the file", "IMAGEQUEUE_API_TOKEN: ${IMAGEQUEUE_API_TOKEN:?set IMAGEQUEUE_API_TOKEN in .env}",
         "IMAGEQUEUE_API_TOKEN: hunter2-but-longer", "serve: IMAGEQUEUE_API_TOKEN is written in the file"),
        ("a password in the Redis URL", "redis://worker:${REDIS_WORKER_PASSWORD:?set REDIS_WORKER_PASSWORD in .env}@redis:6379",
         "redis://worker:s3cret-password-123@redis:6379", "a redis:// URL in the compose file holds a literal password"),
        ("an undocumented variable", "${PROMETHEUS_RETENTION:-15d}", "${PROMETHEUS_KEEP:-15d}",
         "${PROMETHEUS_KEEP} is used in the compose file but not documented in .env.example"),
        ("a key the Compose schema does not know", "    stop_grace_period: 15s\n", "    stop_grace_period: 15s\n    restart_policy: always\n",
         "schema: services/serve: 'restart_policy' does not match any of the regexes"),
        ("an eviction policy on the command line", "\"--maxmemory\", \"${REDIS_MAXMEMORY:-1gb}\"",
         "\"--maxmemory\", \"${REDIS_MAXMEMORY:-1gb}\", \"--maxmemory-policy\", \"allkeys-lru\"",
         "redis: maxmemory-policy must be noeviction"),
        ("AOF switched off on the command line", "\"--maxmemory\", \"${REDIS_MAXMEMORY:-1gb}\"",
         "\"--maxmemory\", \"${REDIS_MAXMEMORY:-1gb}\", \"--appendonly\", \"no\"", "redis: appendonly must be yes"),
        ("a stop grace period shorter than the worker's", "  stop_grace_period: 45s\n", "  stop_grace_period: 20s\n",
         "flux-worker-1: stop_grace_period must exceed the worker's grace of 30 s"),
        ("serve reading images elsewhere", "      - images:/var/lib/imagequeue/images:ro\n", "      - images:/srv/images:ro\n",
         "serve: must mount volume images at /var/lib/imagequeue/images"),
        ("a worker without its metrics port", "[\"--models\", \"sdxl\", \"--metrics-port\", \"9464\"",
         "[\"--models\", \"sdxl\"", "sdxl-worker: must run --metrics-port 9464"),
        ("workers running the whole imagequeue binary", "  entrypoint: [\"imagequeue-worker\"]\n", "",
         "flux-worker-1: the entrypoint must be imagequeue-worker"),
        ("a worker started before Redis is healthy", "      condition: service_healthy\n", "      condition: service_started\n",
         "flux-worker-1: must depend on redis being healthy"),
    ]

    @Test("the compose checker catches each mistake", arguments: composeMistakes)
    func composeCheckerCatches(_ mistake: (String, String, String, String)) async throws {
        let (what, original, replacement, message) = mistake
        let text = try String(contentsOf: Self.root.appendingPathComponent("docker-compose.yml"), encoding: .utf8)
        let range = try #require(text.range(of: original), "\(what): docker-compose.yml no longer contains \(original)")
        let path = try Self.temporaryFile("docker-compose.yml", text.replacingCharacters(in: range, with: replacement))
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        let result = try await Self.check(["compose", "--file", path, "--schema", Self.schema])
        #expect(result.status == 1, "\(what): \(result.stdout)\(result.stderr)")
        #expect(result.stdout.split(separator: "\n").contains { $0.hasPrefix(message) }, "\(what): \(result.stdout)")
    }

    @Test("ops/Dockerfile: multi-stage, non-root, no secrets, an ENTRYPOINT (and hadolint, when installed)")
    func dockerfilePasses() async throws {
        let result = try await Self.check(["dockerfile"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.hasPrefix("Dockerfile OK: 2 stages, runs as 10001:10001"), "\(result.stdout)")
        print("ops/check_deploy.py dockerfile: \(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))")
    }

    static let dockerfileMistakes: [(String, String, String, String)] = [
        ("root in the final stage", "USER 10001:10001\n", "USER root\n", "the final stage runs as root"),
        ("no USER", "USER 10001:10001\n", "", "the final stage has no USER: it would run as root"),
        ("an unnamed build stage", "-bookworm AS builder\n", "-bookworm\n", "no named build stage (FROM ... AS builder)"),
        ("one stage only", "FROM debian:bookworm-slim AS runtime\n", "", "not multi-stage: 1 FROM"),
        ("a password in ENV", "USER 10001:10001\n", "ENV REDIS_PASSWORD=letmein\nUSER 10001:10001\n",
         "ENV REDIS_PASSWORD: secrets must not be built into the image"),
        ("no ENTRYPOINT", "ENTRYPOINT [\"imagequeue\"]\n", "", "the final stage has no ENTRYPOINT"),
        ("the worker executable not built", "    && swift build -c release --product imagequeue-worker --static-swift-stdlib \\\n", "",
         "the build stage does not run `swift build -c release --product imagequeue-worker`"),
        ("the worker executable not installed", "COPY --from=builder /staging/bin/imagequeue-worker /usr/local/bin/imagequeue-worker\n", "",
         "the final stage does not copy imagequeue-worker to /usr/local/bin/imagequeue-worker"),
        ("a shell-form ENTRYPOINT", "ENTRYPOINT [\"imagequeue\"]\n", "ENTRYPOINT imagequeue\n", "ENTRYPOINT must be in exec form"),
    ]

    @Test("the Dockerfile checker catches each mistake", arguments: dockerfileMistakes)
    func dockerfileCheckerCatches(_ mistake: (String, String, String, String)) async throws {
        let (what, original, replacement, message) = mistake
        let text = try String(contentsOf: Self.root.appendingPathComponent("ops/Dockerfile"), encoding: .utf8)
        let range = try #require(text.range(of: original), "\(what): ops/Dockerfile no longer contains \(original)")
        let path = try Self.temporaryFile("Dockerfile", text.replacingCharacters(in: range, with: replacement))
        defer { try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path) }
        let result = try await Self.check(["dockerfile", "--file", path])
        #expect(result.status == 1, "\(what): \(result.stdout)\(result.stderr)")
        #expect(result.stdout.split(separator: "\n").contains { $0.hasPrefix(message) }, "\(what): \(result.stdout)")
    }
}
