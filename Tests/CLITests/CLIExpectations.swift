import Foundation
import Testing
import TestSupport

/// Text that only a crash or an uncaught error would print.
private let crashMarkers = ["Fatal error", "Stack dump", "Backtrace", "crashed", "Current stack trace"]

/// Expects the CLI's failure contract: exit `status`, exactly one non-empty line on stderr,
/// nothing on stdout, no crash report.
func expectOneLineFailure(_ result: CommandResult, status: Int32,
                          sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(result.status == status, "stderr: \(result.stderr)", sourceLocation: sourceLocation)
    expectOneLine(result.stderr, sourceLocation: sourceLocation)
    #expect(result.stdout.isEmpty, "stdout: \(result.stdout)", sourceLocation: sourceLocation)
}

/// Expects exactly one non-empty line ending in a newline, and no crash report.
func expectOneLine(_ stderr: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let body = stderr.hasSuffix("\n") ? String(stderr.dropLast()) : stderr
    #expect(!body.trimmingCharacters(in: .whitespaces).isEmpty, "stderr is empty", sourceLocation: sourceLocation)
    #expect(!body.contains("\n"), "stderr has more than one line: \(stderr)", sourceLocation: sourceLocation)
    for marker in crashMarkers {
        #expect(!stderr.contains(marker), "stderr: \(stderr)", sourceLocation: sourceLocation)
    }
}

/// The statuses of `watch --json` lines, each of which must be a JSON object about `id`.
func watchedStatuses(_ lines: [String], id: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
    try lines.map { line in
        let event = try ParsedJSON.parse(line)
        #expect(event["id"]?.string == id, "event: \(line)", sourceLocation: sourceLocation)
        return try #require(event["status"]?.string, "event without a status: \(line)", sourceLocation: sourceLocation)
    }
}
