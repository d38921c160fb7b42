import FoundationEssentials
import ImageQueue
#if canImport(Glibc)
import Glibc
#endif

/// The one layer that reads settings: environment variables and, for the worker, a config
/// file (`KEY=VALUE` lines with the same names; the environment wins). Everything past it
/// (the libraries, the server, the fronts) takes typed configurations and never looks up a
/// variable. Every bad value is a `ConfigurationError` naming the setting, never its value.
public struct Settings: Sendable {
    /// The values by name.
    public let values: [String: String]

    /// Settings from a dictionary.
    public init(_ values: [String: String]) {
        self.values = values
    }

    /// The process environment, read once; an empty variable counts as unset.
    public static let process = Settings(processEnvironment().filter { !$0.value.isEmpty })

    /// `environment` over the config file at `configFile`, else at `IMAGEQUEUE_CONFIG_FILE`, if any.
    /// - Throws: `ConfigurationError` naming `IMAGEQUEUE_CONFIG_FILE` when the file cannot be read or parsed.
    public static func load(environment: [String: String], configFile: String? = nil) throws(ConfigurationError) -> Settings {
        var values: [String: String] = [:]
        if let path = configFile ?? environment["IMAGEQUEUE_CONFIG_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
            values = try parseConfigFile(path)
        }
        for (key, value) in environment where !value.isEmpty { values[key] = value }
        return Settings(values)
    }

    /// Parses `KEY=VALUE` lines; `#` starts a comment; values may be quoted.
    static func parseConfigFile(_ path: String) throws(ConfigurationError) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(setting: "IMAGEQUEUE_CONFIG_FILE", reason: "cannot read \(path)")
        }
        var values: [String: String] = [:]
        for (number, rawLine) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigurationError(setting: "IMAGEQUEUE_CONFIG_FILE", reason: "\(path):\(number + 1): expected KEY=VALUE")
            }
            let key = line[..<equals].trimmingWhitespace()
            var value = line[line.index(after: equals)...].trimmingWhitespace()
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            values[key] = value
        }
        return values
    }

    /// A set value.
    public subscript(_ name: String) -> String? { values[name] }

    /// An http:// or https:// URL.
    public func url(_ name: String) throws(ConfigurationError) -> String? {
        guard let value = values[name] else { return nil }
        guard value.hasPrefix("http://") || value.hasPrefix("https://"), value.count > 8 else {
            throw ConfigurationError(setting: name, reason: "must be an http:// or https:// URL")
        }
        return value
    }

    /// A positive number of seconds below 10⁷, rounded up to whole milliseconds: a positive
    /// setting below a millisecond must not become zero (a zero timeout is no timeout at all,
    /// a zero lease expires at once).
    public func seconds(_ name: String) throws(ConfigurationError) -> Duration? {
        guard let value = values[name] else { return nil }
        guard let number = Double(value), number > 0, number < 1e7 else {
            throw ConfigurationError(setting: name, reason: "must be a positive number of seconds")
        }
        return .milliseconds(Int64((number * 1000).rounded(.up)))
    }

    /// A whole number within `range`.
    public func integer(_ name: String, _ range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
        guard let value = values[name] else { return nil }
        guard let number = Int(value), range.contains(number) else {
            throw ConfigurationError(setting: name, reason: "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return number
    }

    /// 64-bit ids separated by commas or spaces, nil for an empty list; `what` says what one
    /// id is, for the error.
    public func identifiers(_ name: String, what: String) throws(ConfigurationError) -> Set<Int64>? {
        guard let value = values[name] else { return nil }
        var ids: Set<Int64> = []
        for entry in value.split(whereSeparator: { $0 == "," || $0 == " " }) where !entry.isEmpty {
            guard let id = Int64(entry) else {
                throw ConfigurationError(setting: name, reason: "holds '\(entry.prefix(32))', which is not a numeric \(what)")
            }
            ids.insert(id)
        }
        return ids.isEmpty ? nil : ids
    }

    /// One of an enumeration's raw values (`reason` lists them).
    public func choice<Value: RawRepresentable>(_ name: String, _ type: Value.Type, lowercased: Bool = false,
                                                reason: String) throws(ConfigurationError) -> Value? where Value.RawValue == String {
        guard let value = values[name] else { return nil }
        guard let parsed = Value(rawValue: lowercased ? value.lowercased() : value) else {
            throw ConfigurationError(setting: name, reason: reason)
        }
        return parsed
    }
}

/// The process environment as a dictionary.
func processEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        pointer += 1
    }
    return result
}
