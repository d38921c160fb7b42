import Foundation
import Testing
import TestSupport

/// One systemd unit file: `[Section]` headers and `Key=Value` lines (a key may repeat).
struct UnitFile {
    let name: String
    var entries: [(section: String, key: String, value: String)] = []

    init(name: String, text: String) {
        self.name = name
        var section = ""
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast())
            } else if let equals = line.firstIndex(of: "=") {
                entries.append((section, String(line[..<equals]), String(line[line.index(after: equals)...])))
            }
        }
    }

    /// Every value of `key` in `[Service]` (or another section), in order.
    func values(_ key: String, section: String = "Service") -> [String] {
        entries.filter { $0.section == section && $0.key == key }.map(\.value)
    }

    /// The `Environment=NAME=VALUE` defaults.
    var environmentDefaults: [String: String] {
        var result: [String: String] = [:]
        for assignment in values("Environment") {
            let parts = assignment.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
        }
        return result
    }
}

/// ops/systemd: the units systemd accepts (systemd-analyze verify, when installed), with the
/// hardening, stop timing and flags the worker, serve and telegram really have.
@Suite("ops: systemd units")
struct SystemdUnitTests {
    /// Each unit and the command it runs: the lean `imagequeue-worker`, or an `imagequeue`
    /// subcommand.
    static let units = ["imagequeue-worker@.service": ["/usr/local/bin/imagequeue-worker"],
                        "imagequeue-serve.service": ["/usr/local/bin/imagequeue", "serve"],
                        "imagequeue-telegram.service": ["/usr/local/bin/imagequeue", "telegram"]]

    static func load(_ name: String) throws -> UnitFile {
        UnitFile(name: name, text: try packageFile("ops/systemd/\(name)"))
    }

    @Test("each unit has the hardening, restart policy and environment file the brief asks for", arguments: Array(units.keys))
    func hardening(name: String) throws {
        let unit = try Self.load(name)
        let required: [String: String] = [
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
            "PrivateDevices": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
            "SystemCallFilter": "@system-service", "CapabilityBoundingSet": "", "KillSignal": "SIGTERM",
            "Restart": "on-failure", "User": "imagequeue", "MemoryDenyWriteExecute": "yes",
        ]
        for (key, value) in required {
            #expect(unit.values(key) == [value], "\(name): \(key)=\(unit.values(key)), want \(value)")
        }
        #expect(!unit.values("EnvironmentFile").filter { !$0.hasPrefix("-") }.isEmpty, "\(name) needs a required EnvironmentFile")
        #expect(unit.values("TimeoutStopSec").count == 1, "\(name): TimeoutStopSec")
        #expect(unit.values("WantedBy", section: "Install") == ["multi-user.target"])
    }

    @Test("ExecStart runs the installed binary with flags its --help lists, every ${VAR} has a default", arguments: Array(units.keys))
    func execStart(name: String) async throws {
        let unit = try Self.load(name)
        let command = try #require(unit.values("ExecStart").first, "\(name) has no ExecStart")
        let words = command.split(separator: " ").map(String.init)
        let program = try #require(Self.units[name])
        #expect(Array(words.prefix(program.count)) == program, "\(name): \(command)")
        let help = program[0].hasSuffix("imagequeue-worker")
            ? try await runProgram(TestEnvironment.standaloneWorkerBinary(), ["--help"])
            : try await QueueCLI().runExactly(Array(program.dropFirst()) + ["--help"])
        #expect(help.status == 0, "\(program.joined(separator: " ")) --help: \(help.stderr)")
        for flag in words where flag.hasPrefix("--") {
            #expect(help.stdout.contains(flag + " "), "\(name): \(flag) is not an option of `\(program.joined(separator: " "))`")
        }
        let defaults = unit.environmentDefaults
        for match in command.matches(of: /\$\{([A-Z0-9_]+)\}/) {
            #expect(defaults[String(match.1)] != nil, "\(name): ${\(match.1)} has no Environment= default")
        }
    }

    @Test("the worker's TimeoutStopSec outlasts its grace period (the default and the example's)")
    func workerStopTimeoutOutlastsGrace() async throws {
        let unit = try Self.load("imagequeue-worker@.service")
        let timeout = try #require(Double(unit.values("TimeoutStopSec").first ?? ""), "TimeoutStopSec must be plain seconds")
        // `worker --help` does not print the grace default: read it where it is set.
        let source = try packageFile("Sources/ImageWorker/WorkerConfiguration.swift")
        let builtIn = try #require(source.firstMatch(of: /public var grace: Duration = \.seconds\((\d+)\)/).flatMap { Double($0.1) },
                                   "WorkerConfiguration.grace's default not found")
        let example = try packageFile("ops/systemd/worker-flux.env.example")
        let configured = try #require(example.firstMatch(of: /IMAGEQUEUE_GRACE_SECONDS=(\d+)/).flatMap { Double($0.1) })
        // After the grace, jobs still running are cancelled and released: leave 30 s for that.
        for grace in [builtIn, configured] {
            #expect(timeout >= grace + 30, "TimeoutStopSec \(timeout) leaves under 30 s after a \(grace) s grace")
        }
        // The worker reads the instance's file; the example is named for an instance.
        #expect(unit.values("EnvironmentFile").contains("/etc/imagequeue/worker-%i.env"))
        #expect(unit.values("ReadWritePaths") == ["/var/lib/imagequeue/images"])
        #expect(unit.environmentDefaults["IMAGEQUEUE_OUTPUT_DIR"] == "/var/lib/imagequeue/images")
    }

    @Test("no secret is written into a unit or an example: keys and tokens are placeholders")
    func noSecretLiterals() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: TestEnvironment.packageRoot.appendingPathComponent("ops/systemd").path)
        #expect(files.count >= 7, "\(files)")
        let secretNames = /(?m)^\s*(?:Environment=)?"?([A-Z_]*(?:KEY|TOKEN|PASSWORD|SECRET)[A-Z_]*)=([^\s"]*)/
        for file in files {
            let text = try packageFile("ops/systemd/\(file)")
            for match in text.matches(of: secretNames) {
                // Units set no secret at all; the examples only placeholders.
                #expect(!file.hasSuffix(".service") && match.2 == "replace-me",
                        "\(file): \(match.1) is set to \(match.2.isEmpty ? "nothing" : "a value"); secrets belong in /etc/imagequeue/*.env")
            }
            // A Redis URL with a password in it.
            #expect(text.firstMatch(of: /redis[s]?:\/\/[^\s@\/]*:[^\s@\/]+@/) == nil, "\(file) has a Redis password")
        }
    }

    @Test("systemd-analyze verify accepts every unit (skipped when systemd-analyze is not installed)")
    func systemdAnalyzeVerify() async throws {
        guard programOnPath("systemd-analyze") != nil else {
            print("OpsTests: systemd-analyze is not installed; the units get the structural checks only")
            return
        }
        let binary = try TestEnvironment.imagequeueBinary().path
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-units-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // verify checks that ExecStart's program exists: point it at the binary under test.
        // A template is verified through an instance of it.
        for (name, instance) in [("imagequeue-worker@.service", "imagequeue-worker@flux.service"),
                                 ("imagequeue-serve.service", "imagequeue-serve.service"),
                                 ("imagequeue-telegram.service", "imagequeue-telegram.service")] {
            let text = try packageFile("ops/systemd/\(name)").replacingOccurrences(of: "/usr/local/bin/imagequeue", with: binary)
            let path = directory.appendingPathComponent(instance).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let result = try await runOnPath(["systemd-analyze", "verify", "--man=no", path])
            // Unknown keys and bad values are only warnings: any line about our file fails.
            let complaints = (result.stdout + result.stderr).split(separator: "\n").filter { $0.contains(directory.path) || $0.contains(instance) }
            #expect(result.status == 0 && complaints.isEmpty, "\(instance): exit \(result.status)\n\(result.stdout)\(result.stderr)")
        }
    }
}
