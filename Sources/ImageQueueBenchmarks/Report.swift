import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One line of the result table.
struct Row: Sendable {
    var figure: String
    var value: String
    var reference: String = ""
    var verdict: Verdict = .info

    enum Verdict: String, Sendable {
        case met, missed, info = "", skipped
    }
}

/// The rows and notes gathered while the sections run; printed once at the end.
/// Progress goes to stderr as it happens so a long run shows where it is.
final class Report: @unchecked Sendable {
    // Safe to share: only the bench's one sequential flow touches it, never two tasks at once.
    private(set) var rows: [Row] = []
    private(set) var notes: [String] = []

    func add(_ row: Row) {
        rows.append(row)
        progress("  \(row.figure): \(row.value)\(row.verdict == .info ? "" : " [\(row.verdict.rawValue)]")")
    }

    func note(_ text: String) {
        notes.append(text)
        progress("  note: \(text)")
    }

    /// A row with a target: "met" or "missed", never left out.
    func check(_ figure: String, value: String, reference: String, met: Bool) {
        add(Row(figure: figure, value: value, reference: reference, verdict: met ? .met : .missed))
    }

    func render(machine: String) -> String {
        var lines = ["| figure | value | ceiling / target | verdict |", "|---|---|---|---|"]
        for row in rows {
            let cells = [row.figure, row.value, row.reference, row.verdict.rawValue].map { $0.replacingOccurrences(of: "|", with: "\\|") }
            lines.append("| " + cells.joined(separator: " | ") + " |")
        }
        lines.append("")
        lines.append(machine)
        if !notes.isEmpty {
            lines.append("")
            for note in notes { lines.append("- " + note) }
        }
        return lines.joined(separator: "\n")
    }
}

/// Writes a progress line to stderr.
func progress(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

// MARK: - Number formatting

/// 12345.6 -> "12,346".
func grouped(_ value: Double) -> String {
    guard value.isFinite else { return "-" }
    let whole = Int(value.rounded())
    let digits = String(abs(whole))
    var out = ""
    for (offset, character) in digits.enumerated() {
        if offset > 0, (digits.count - offset) % 3 == 0 { out.append(",") }
        out.append(character)
    }
    return (whole < 0 ? "-" : "") + out
}

/// A value with `places` decimals.
func fixed(_ value: Double, _ places: Int) -> String {
    guard value.isFinite else { return "-" }
    return String(format: "%.\(places)f", value)
}

/// Seconds of a Duration as a Double.
extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

// MARK: - The machine line

enum Machine {
    /// `nproc`, CPU model, kernel, Redis version, date, and the load average when the run started.
    static func line(redisVersion: String, loadBefore: String) -> String {
        var name = utsname()
        uname(&name)
        let kernel = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?" } ?? "?"
        let date = ISO8601DateFormatter().string(from: Date())
        return "machine: nproc \(sysconf(Int32(_SC_NPROCESSORS_ONLN))), \(cpu), Linux \(kernel), Redis \(redisVersion), \(date), "
            + "load average \(loadBefore) before and \(loadAverage()) after"
    }

    /// The 1, 5 and 15 minute load averages.
    static func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
    }
}
