// Fuzz target `config`: the settings a process starts from.
//
// Input: `<config file text> [NUL <environment>]`. The config text is written to a file (none
// when it is empty) and read by `WorkerConfiguration.load(environment:configFile:)`, with the
// environment taken from the second part's `KEY=VALUE` lines (as the worker does with
// `--config` and its environment). Then the whole input and each of its lines are read as a Redis URL
// (`RedisConfiguration(url:)`, `RedisEndpoint.description`), a `TELEGRAM_ALLOWED_IDS` list
// (`Settings.identifiers`) and a bot token (`TelegramConfiguration.botID`).
import FoundationEssentials
import ImageQueue
import ImageQueueCommandLine
import ImageWorker
import RedisClient
import TelegramFront
#if canImport(Glibc)
import Glibc
#endif

/// In memory when there is a tmpfs: the file is rewritten for every input. Removed at exit.
private let configPath: String = {
    let path = (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") + "/imagequeue-fuzz-config-\(getpid())"
    atexit { _ = unlink(configPath) }
    return path
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func configFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    let nul = bytes.firstIndex(of: 0)
    let fileBytes = bytes[..<(nul ?? size)]
    var environment: [String: String] = [:]
    if let nul {
        for line in String(decoding: bytes[(nul + 1)...], as: UTF8.self).split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            environment[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
    }
    // An empty file reads as no settings, which no file at all gives too; reading one would
    // only meet a swift-foundation leak (docs/FUZZING.md) and a leak check per input.
    environment["IMAGEQUEUE_CONFIG_FILE"] = nil
    var file: String?
    if !fileBytes.isEmpty {
        write(fileBytes, to: configPath)
        file = configPath
    }
    if let configuration = try? WorkerConfiguration.load(environment: environment, configFile: file) {
        precondition(configuration.lease > .zero && configuration.grace > .zero, "a non-positive lease or grace")
        precondition(configuration.resultTTL > .zero && configuration.generationTimeout > .zero
                     && configuration.enhancementTimeout > .zero, "a non-positive timeout")
        precondition(!configuration.queue.models.isEmpty, "no models")
        _ = configuration.servableModels(configuration.queue.models)
    }

    let text = String(decoding: bytes, as: UTF8.self)
    settings(text)
    for line in text.split(separator: "\n") { settings(String(line)) }
    return 0
}

/// Replaces the file's contents (plain write(2): FileManager's atomic replace is slow).
private func write(_ bytes: Slice<UnsafeBufferPointer<UInt8>>, to path: String) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    precondition(fd >= 0, "cannot write \(path)")
    defer { close(fd) }
    var written = 0
    while written < bytes.count {
        let n = Glibc.write(fd, bytes.base.baseAddress! + bytes.startIndex + written, bytes.count - written)
        precondition(n > 0, "cannot write \(path)")
        written += n
    }
}

private func settings(_ text: String) {
    if let redis = try? RedisConfiguration(url: text) {
        let shown = redis.endpoint.description
        if let password = redis.endpoint.password, case .tcp = redis.endpoint.address {
            precondition(shown.contains(":***@"), "a password that is not masked")
            _ = password
        }
        precondition(redis.endpoint.database >= 0, "a negative database")
        if case .tcp(let host, let port) = redis.endpoint.address {
            precondition(!host.isEmpty && (1...65535).contains(port), "an unusable host or port")
        }
    }
    do {
        let ids = try Settings(["TELEGRAM_ALLOWED_IDS": text]).identifiers("TELEGRAM_ALLOWED_IDS", what: "user or chat id")
        precondition(ids.map { !$0.isEmpty } ?? true, "an empty allow-list instead of nil")
    } catch {
        _ = error.description
    }
    let telegram = TelegramConfiguration(token: text, frontID: "fuzz")
    if let id = telegram.botID {
        precondition(!id.isEmpty && text.hasPrefix(id + ":"), "a bot id that is not the token's head")
    }
}
