import CurlHTTP
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The text of a file under the package root (`ops/prometheus/alerts.yml`).
func packageFile(_ path: String) throws -> String {
    let url = TestEnvironment.packageRoot.appendingPathComponent(path)
    guard let data = FileManager.default.contents(atPath: url.path) else { throw TestSetupError("cannot read \(path)") }
    return String(decoding: data, as: UTF8.self)
}

/// The full path of a program on PATH, if there is one.
func programOnPath(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// Runs `/usr/bin/env ARGUMENTS` (a program found on PATH) to completion.
func runOnPath(_ arguments: [String], timeout: Double = 120) async throws -> CommandResult {
    try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), arguments, timeout: timeout)
}

/// What ops/prometheus/prometheus.yml and alerts.yml say, read by Tests/Python/ops_config.py
/// with PyYAML.
struct PrometheusFiles {
    struct Alert {
        var name: String
        var expression: String
        var labels: [String: String]
        var annotations: [String: String]
    }

    var ruleFiles: [String]
    /// Each scrape job's static targets.
    var scrapeTargets: [String: [String]]
    var alerts: [Alert]

    /// - Throws: `TestSetupError` with the helper's message when a file does not parse.
    static func load() async throws -> PrometheusFiles {
        let root = TestEnvironment.packageRoot
        let result = try await runOnPath(["python3", root.appendingPathComponent("Tests/Python/ops_config.py").path,
                                          root.appendingPathComponent("ops/prometheus/prometheus.yml").path,
                                          root.appendingPathComponent("ops/prometheus/alerts.yml").path])
        guard result.status == 0 else { throw TestSetupError("ops_config.py exited \(result.status): \(result.stderr)") }
        let json = try ParsedJSON.parse(result.stdout)
        var files = PrometheusFiles(ruleFiles: json["rule_files"]?.array?.compactMap(\.string) ?? [], scrapeTargets: [:], alerts: [])
        for (job, value) in json["scrape_jobs"]?.object ?? [:] {
            files.scrapeTargets[job] = value["targets"]?.array?.compactMap(\.string) ?? []
        }
        for alert in json["alerts"]?.array ?? [] {
            func strings(_ node: ParsedJSON?) -> [String: String] {
                (node?.object ?? [:]).compactMapValues(\.string)
            }
            files.alerts.append(Alert(name: alert["alert"]?.string ?? "", expression: alert["expr"]?.string ?? "",
                                      labels: strings(alert["labels"]), annotations: strings(alert["annotations"])))
        }
        return files
    }
}

/// The PromQL expressions of ops/grafana/imagequeue-dashboard.json's panels.
func dashboardExpressions() throws -> [(panel: String, expression: String)] {
    let dashboard = try ParsedJSON.parse(try packageFile("ops/grafana/imagequeue-dashboard.json"))
    var result: [(String, String)] = []
    for panel in dashboard["panels"]?.array ?? [] {
        for target in panel["targets"]?.array ?? [] {
            if let expression = target["expr"]?.string { result.append((panel["title"]?.string ?? "?", expression)) }
        }
    }
    return result
}

/// The metric names a PromQL expression reads: identifiers that are not followed by `(`
/// (functions), not inside `by (...)`/`on (...)`-style label lists, not keywords, not in
/// strings or `{...}` matchers, not durations in `[...]`.
func metricNames(in expression: String) -> Set<String> {
    // Aggregations may put `by (...)` before their parentheses, so they are not always
    // followed by `(`.
    let keywords: Set<String> = ["by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                                 "bool", "offset", "inf", "nan", "sum", "min", "max", "avg", "group", "stddev", "stdvar",
                                 "count", "count_values", "bottomk", "topk", "quantile"]
    var names: Set<String> = []
    let characters = Array(expression)
    var index = 0
    var afterGrouping = false
    func isStart(_ c: Character) -> Bool { c.isLetter || c == "_" || c == ":" }
    func isPart(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" || c == ":" }
    while index < characters.count {
        let c = characters[index]
        switch c {
        case "\"", "'", "`":
            index += 1
            while index < characters.count, characters[index] != c { index += characters[index] == "\\" ? 2 : 1 }
            index += 1
        case "{", "[":
            let close: Character = c == "{" ? "}" : "]"
            while index < characters.count, characters[index] != close {
                if characters[index] == "\"" {
                    index += 1
                    while index < characters.count, characters[index] != "\"" { index += characters[index] == "\\" ? 2 : 1 }
                }
                index += 1
            }
            index += 1
        case "(" where afterGrouping:
            while index < characters.count, characters[index] != ")" { index += 1 }
            index += 1
            afterGrouping = false
        case _ where isStart(c) && (index == 0 || !isPart(characters[index - 1])):
            var end = index
            while end < characters.count, isPart(characters[end]) { end += 1 }
            let word = String(characters[index..<end])
            var next = end
            while next < characters.count, characters[next] == " " || characters[next] == "\n" { next += 1 }
            let isCall = next < characters.count && characters[next] == "("
            if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(word) {
                afterGrouping = true
            } else if !isCall, !keywords.contains(word.lowercased()), !word.hasPrefix("$") {
                names.insert(word)
            }
            index = end
        default:
            index += 1
        }
    }
    return names
}

/// One process's `/metrics`: the families its `# TYPE` lines declare and the sample names.
struct Exposition {
    /// Family name → type (`counter`, `gauge`, `histogram`, `summary`, `untyped`).
    var families: [String: String] = [:]
    var sampleNames: Set<String> = []
    /// The whole text.
    var text: String

    init(_ text: String) {
        self.text = text
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count >= 4 { families[String(parts[2])] = String(parts[3]) }
            } else if !line.hasPrefix("#"), let end = line.firstIndex(where: { $0 == "{" || $0 == " " }) {
                sampleNames.insert(String(line[..<end]))
            }
        }
    }

    /// The value of the single sample `name` with exactly `labels`, if present.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            let series = line[..<space]
            var seriesName = Substring(series)
            var seriesLabels: [String: String] = [:]
            if let brace = series.firstIndex(of: "{") {
                seriesName = series[..<brace]
                let inside = series[series.index(after: brace)..<(series.lastIndex(of: "}") ?? series.endIndex)]
                for pair in inside.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { seriesLabels[String(parts[0])] = String(parts[1].dropFirst().dropLast()) }
                }
            }
            if seriesName == name, seriesLabels == labels { return Double(line[line.index(after: space)...]) }
        }
        return nil
    }

    /// Why `name`, as a PromQL expression uses it, is not something this process exports
    /// (nil when it is): a histogram's `_bucket`, `_sum` and `_count` count as its own.
    func problem(with name: String) -> String? {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if let type = families[base] {
                if type == "histogram" || (type == "summary" && suffix != "_bucket") { return nil }
                return "\(name): \(base) is a \(type), which has no \(suffix) series"
            }
        }
        guard let type = families[name] else { return "\(name) is not exported" }
        if type == "histogram" || type == "summary" { return "\(name) is a \(type): use its _bucket, _sum or _count" }
        return nil
    }
}

/// GETs a URL; nil when nothing answers.
func fetch(_ url: String, headers: [(name: String, value: String)] = []) async -> (status: Int, text: String)? {
    var request = HTTPRequest(url: url, headers: headers)
    request.timeout = .seconds(20)
    guard let response = try? await HTTPClient().send(request) else { return nil }
    return (response.status, String(decoding: response.body, as: UTF8.self))
}

/// Polls `url` until it answers 200 and `condition` holds on its body; returns the last
/// body either way (the deadline only keeps a broken process from hanging the suite).
func poll(_ url: String, timeout: Double = 60, until condition: (String) -> Bool = { _ in true }) async throws -> String {
    let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
    var last = ""
    while ContinuousClock.now < deadline {
        if let reply = await fetch(url), reply.status == 200 {
            last = reply.text
            if condition(last) { return last }
        }
        try await Task.sleep(for: .milliseconds(100))
    }
    return last
}

/// `imagequeue serve` on a free loopback port against `cli`'s Redis and prefix, once its
/// `/healthz` answers.
/// - Throws: `TestSetupError` with its output when it does not come up.
func startServe(_ cli: QueueCLI, environment extra: [String: String] = [:]) async throws -> (process: SpawnedProcess, baseURL: String) {
    var output = ""
    for _ in 0..<3 {
        let port = try RedisServer.freePort()
        let process = try cli.start(["serve", "--host", "127.0.0.1", "--port", "\(port)", "--redis", cli.redisURL, "--prefix", cli.prefix],
                                    environment: ["IMAGEQUEUE_API_TOKEN": "ops-test-token-\(UInt32.random(in: 0...UInt32.max))"]
                                        .merging(extra) { $1 })
        let base = "http://127.0.0.1:\(port)"
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, process.isRunning {
            if let reply = await fetch(base + "/healthz"), reply.status == 200 { return (process, base) }
            try await Task.sleep(for: .milliseconds(50))
        }
        output = process.output
        process.send(SIGKILL)
        _ = try? await process.waitForExit(timeout: 10)
    }
    throw TestSetupError("imagequeue serve did not come up; it printed:\n\(output)")
}
