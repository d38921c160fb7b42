import FoundationEssentials
import ImageQueue
#if canImport(Glibc)
import Glibc
#endif

/// Printing for the CLI: JSON on stdout, one-line errors on stderr.
public enum Output {
    public static func line(_ text: String) {
        print(text)
    }

    public static func json<T: Encodable>(_ value: T) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return }
        print(String(decoding: data, as: UTF8.self))
    }

    public static func error(_ message: String) {
        let bytes = Array("\(programName): \(message)\n".utf8)
        fflush(nil)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// The name errors are printed under: this executable's file name (`imagequeue`,
    /// `imagequeue-worker`).
    public static let programName: String = {
        let path = CommandLine.arguments.first ?? "imagequeue"
        let name = path.split(separator: "/").last.map(String.init) ?? path
        return name.isEmpty ? "imagequeue" : name
    }()

    public static func flush() {
        fflush(nil)
    }

    /// A readable time from ms since the epoch (UTC).
    public static func time(_ milliseconds: Int64?) -> String {
        guard let milliseconds else { return "-" }
        var seconds = time_t(milliseconds / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = milliseconds % 1000
        let msText = ms < 10 ? "00\(ms)" : ms < 100 ? "0\(ms)" : "\(ms)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday)) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(msText)Z"
    }
}
