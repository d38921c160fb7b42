import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `imagequeue telegram` processes against a fake Bot API of ours, a placeholder worker and
/// the shared Redis under a key prefix of their own. Short poll, lease and edit intervals
/// keep each test to seconds.
struct TelegramHarness: Sendable {
    let cli: QueueCLI
    let telegram: FakeTelegram

    static func start(redisURL: String? = nil) async throws -> TelegramHarness {
        TelegramHarness(cli: try QueueCLI(redisURL: redisURL, label: "tg"), telegram: try await FakeTelegram.start())
    }

    /// The secret half of the bot token, which must never be printed.
    var tokenSecret: String { String(telegram.token.split(separator: ":")[1]) }

    /// Starts a front; `environment` adds to (or overrides) the bot's settings.
    func startFront(_ id: String, arguments: [String] = [], environment: [String: String] = [:]) throws -> SpawnedProcess {
        try cli.start(["telegram", "--id", id, "--poll-timeout", "1", "--lease-seconds", "3", "--edit-interval", "0.2",
                       "--chat-interval", "0.1"]
                      + arguments + ["--redis", cli.redisURL, "--prefix", cli.prefix],
                      environment: telegram.environment().merging(environment) { $1 })
    }

    /// Starts a placeholder worker for both models (`delay` seconds per image).
    func startWorker(delay: Double = 0, environment: [String: String] = [:]) throws -> SpawnedProcess {
        try cli.startWorker(["--models", "flux,sdxl", "--backend", "placeholder", "--lease-seconds", "3",
                             "--output-dir", cli.outputDirectory(), "--id", "\(cli.prefix)-worker"],
                            environment: ["IMAGEQUEUE_PLACEHOLDER_SIZE": "64", "IMAGEQUEUE_PLACEHOLDER_DELAY": "\(delay)"]
                                .merging(environment) { $1 })
    }

    /// Stops processes with SIGTERM and waits for them.
    func stop(_ processes: SpawnedProcess...) async {
        for process in processes where process.isRunning { process.send(SIGTERM) }
        for process in processes { _ = try? await process.waitForExit(timeout: 30) }
    }

    /// Every message the bot sent, in order.
    func messages() async throws -> [BotMessageRecord] {
        try await telegram.messages().map(BotMessageRecord.init)
    }

    /// Waits until the bot has sent `count` photos; returns every message then.
    @discardableResult
    func waitForPhotos(_ count: Int, timeout: Duration = .seconds(40)) async throws -> [BotMessageRecord] {
        try await telegram.waitFor("\(count) photos", timeout: timeout) { [self] in
            try await messages().filter(\.isPhoto).count >= count
        }
        return try await messages()
    }

    /// Waits until the bot's messages satisfy `condition`.
    func waitForMessages(_ what: String, timeout: Duration = .seconds(30),
                         _ condition: @escaping @Sendable ([BotMessageRecord]) -> Bool) async throws {
        try await telegram.waitFor(what, timeout: timeout) { [self] in condition(try await messages()) }
    }

    /// Pending deliveries left in Redis.
    func pendingDeliveries() async throws -> Int {
        let result = try await cli.runRedis(["HLEN", "\(cli.prefix):telegram:{123456}:deliveries"])
        return Int(result) ?? -1
    }
}

extension QueueCLI {
    /// Runs one redis-cli command against this harness's server; returns its output, trimmed.
    func runRedis(_ arguments: [String]) async throws -> String {
        guard let url = URL(string: redisURL), let host = url.host, let port = url.port else {
            throw TestSetupError("cannot read \(redisURL)")
        }
        let result = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"),
                                          ["redis-cli", "-h", host, "-p", "\(port)"] + arguments)
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// One message as the fake Bot API keeps it.
struct BotMessageRecord: Sendable, CustomStringConvertible {
    let id: Int64
    let chat: Int64
    let isPhoto: Bool
    let text: String?
    let caption: String?
    let replyTo: Int64?
    let history: [String]
    let photoBytes: Int
    let photoSHA256: String?
    let photoKind: String?
    let fileName: String?
    let deleted: Bool
    /// The `callback_data` of its inline buttons, in order (empty without a keyboard).
    let buttons: [String]
    /// The album it belongs to, for a photo sent by sendMediaGroup.
    let mediaGroupID: String?

    init(_ object: [String: Any]) {
        id = (object["message_id"] as? NSNumber)?.int64Value ?? -1
        chat = (object["chat_id"] as? NSNumber)?.int64Value ?? 0
        isPhoto = object["kind"] as? String == "photo"
        text = object["text"] as? String
        caption = object["caption"] as? String
        replyTo = (object["reply_to"] as? NSNumber)?.int64Value
        history = object["history"] as? [String] ?? []
        let photo = object["photo"] as? [String: Any]
        photoBytes = (photo?["bytes"] as? NSNumber)?.intValue ?? 0
        photoSHA256 = photo?["sha256"] as? String
        photoKind = photo?["kind"] as? String
        fileName = photo?["filename"] as? String
        deleted = (object["deleted"] as? NSNumber)?.boolValue ?? false
        let rows = (object["reply_markup"] as? [String: Any])?["inline_keyboard"] as? [[[String: Any]]] ?? []
        buttons = rows.flatMap { $0.compactMap { $0["callback_data"] as? String } }
        mediaGroupID = object["media_group_id"] as? String
    }

    /// The job id, from the uploaded file's name (`<job id>.png`).
    var jobID: String? { fileName.map { String($0.split(separator: ".")[0]) } }

    var description: String {
        (isPhoto ? "#\(id) photo → \(replyTo ?? 0) \(fileName ?? "") \"\(caption ?? "")\"" : "#\(id) text → \(replyTo ?? 0) \(history)")
            + (buttons.isEmpty ? "" : " \(buttons)")
    }
}
