import Foundation
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A server-sent-event stream read as it arrives: `curl -N -i` in a child process whose
/// output dedicated threads collect (`SpawnedProcess`), parsed on demand. curl undoes the
/// chunked transfer coding; the status line and headers come first (`-i`). Every wait polls
/// with `Task.sleep`, so nothing blocks the cooperative pool.
final class SSEStream: Sendable {
    /// One complete event (ended by a blank line).
    struct Event: Sendable, CustomStringConvertible {
        var id: String?
        var event: String?
        var data: String
        var json: ParsedJSON? { try? ParsedJSON.parse(data) }
        var status: String? { json?["status"]?.string }
        var description: String { "id=\(id ?? "-") event=\(event ?? "-") data=\(data)" }
    }

    let process: SpawnedProcess

    /// Starts reading `url`; `authorization` is the `Authorization` header's value, if any.
    init(url: String, authorization: String?) throws {
        var arguments = ["-sS", "-N", "-i", "--noproxy", "*", "--max-time", "180", "-H", "Accept: text/event-stream"]
        if let authorization { arguments += ["-H", "Authorization: \(authorization)"] }
        arguments.append(url)
        process = try SpawnedProcess(try Self.curlPath(), arguments, environment: ProcessInfo.processInfo.environment)
    }

    deinit { process.send(SIGKILL) }

    private static func curlPath() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") + ["/usr/bin", "/usr/local/bin"] {
            let candidate = "\(directory)/curl"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestSetupError("curl is not installed")
    }

    /// The response head and body received so far (nil head until it is complete).
    private var parts: (head: String?, body: String) {
        let text = process.stdout
        guard let range = text.range(of: "\r\n\r\n") else { return (nil, "") }
        return (String(text[..<range.lowerBound]), String(text[range.upperBound...]))
    }

    /// The status code, once the head has arrived.
    var status: Int? {
        guard let head = parts.head, let line = head.split(separator: "\r\n").first else { return nil }
        let fields = line.split(separator: " ")
        return fields.count >= 2 ? Int(fields[1]) : nil
    }

    /// The response headers (names lowercased), once the head has arrived.
    var headers: [String: String] {
        guard let head = parts.head else { return [:] }
        var headers: [String: String] = [:]
        for line in head.split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return headers
    }

    /// The Content-Type without parameters, lowercased.
    var mediaType: String? {
        headers["content-type"].flatMap { $0.split(separator: ";").first }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    }

    /// The body received so far, line ends normalised to `\n`.
    var body: String {
        parts.body.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
    }

    /// The complete events received so far, in order.
    var events: [Event] {
        var blocks = body.components(separatedBy: "\n\n")
        blocks.removeLast()  // the part after the last blank line is not complete yet
        var events: [Event] = []
        for block in blocks {
            var event = Event(id: nil, event: nil, data: "")
            var dataLines: [String] = []
            for line in block.split(separator: "\n", omittingEmptySubsequences: true) where !line.hasPrefix(":") {
                let name: Substring
                var value: Substring = ""
                if let colon = line.firstIndex(of: ":") {
                    name = line[..<colon]
                    value = line[line.index(after: colon)...]
                    if value.hasPrefix(" ") { value = value.dropFirst() }
                } else {
                    name = line
                }
                switch name {
                case "id": event.id = String(value)
                case "event": event.event = String(value)
                case "data": dataLines.append(String(value))
                default: break
                }
            }
            if dataLines.isEmpty { continue }  // comments only (keep-alive)
            event.data = dataLines.joined(separator: "\n")
            events.append(event)
        }
        return events
    }

    /// Comment lines (`: text`) received so far, without the colon.
    var comments: [String] {
        body.split(separator: "\n").filter { $0.hasPrefix(":") }.map { String($0.dropFirst()).trimmingCharacters(in: .whitespaces) }
    }

    /// Waits until the response head has arrived; returns the status (nil if curl ended or
    /// the deadline passed first).
    func waitForHead(timeout: Double = 30) async -> Int? {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while ContinuousClock.now < deadline {
            if let status { return status }
            if !process.isRunning {
                // Reaped is not read: let the output be read to its end first.
                _ = try? await process.waitForExit(timeout: 5)
                return status
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return status
    }

    /// Waits until `condition` holds for the events so far (or curl ended, or the deadline
    /// passed); returns the events then.
    @discardableResult
    func waitForEvents(timeout: Double = 30, until condition: ([Event]) -> Bool) async -> [Event] {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while ContinuousClock.now < deadline {
            let events = self.events
            if condition(events) { return events }
            if !process.isRunning {
                _ = try? await process.waitForExit(timeout: 5)  // all of the output, not part
                return self.events
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return events
    }

    /// Waits until the body holds a comment line `text` (or curl ended, or the deadline passed).
    func waitForComment(_ text: String, timeout: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while ContinuousClock.now < deadline {
            if comments.contains(text) { return true }
            if !process.isRunning {
                _ = try? await process.waitForExit(timeout: 5)  // all of the output, not part
                break
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return comments.contains(text)
    }

    /// Waits until the server ends the stream (curl exits); nil when it is still open after
    /// `timeout` seconds (the stream is then left open).
    func waitForEnd(timeout: Double = 30) async -> SpawnedProcess.Termination? {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while ContinuousClock.now < deadline {
            if process.termination != nil {
                // Also wait until its output is read to the end.
                return try? await process.waitForExit(timeout: 10)
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Closes the stream from the client's side.
    func close() async {
        process.send(SIGTERM)
        _ = try? await process.waitForExit(timeout: 10)
    }
}
