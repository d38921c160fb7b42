import Foundation
import ImageQueue
import Testing
import TestSupport

/// docs/PROTOCOL.md is enough for another language: a redis-py client written from it
/// enqueues and watches, and the Swift worker side claims, reads and completes its job.
@Suite(.runsClients) struct ProtocolInteropTests {
    @Test func aPythonClientFollowingTheProtocolDocumentInteroperates() async throws {
        let queue = try QueueFixture()
        defer { queue.close() }
        let script = TestEnvironment.packageRoot.appendingPathComponent("Tests/Python/protocol_client.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, "--redis", try TestEnvironment.redisURL(), "--prefix",
                             queue.configuration.keyPrefix, "--model", "sdxl", "--user", "py-user", "--wait", "30",
                             "a watercolour of Kyoto from Python"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()

        // The first line is the enqueue result (read off the cooperative pool: it blocks).
        let reader = output.fileHandleForReading
        var buffer = try await offPool {
            var buffer = Data()
            while !buffer.contains(UInt8(ascii: "\n")) {
                let chunk = reader.readChunk()
                if chunk.isEmpty { break }
                buffer.append(chunk)
            }
            return buffer
        }
        let firstLine = buffer.split(separator: UInt8(ascii: "\n")).first ?? Data()
        let enqueued = try #require(try JSONSerialization.jsonObject(with: firstLine) as? [String: Any])
        let id = try #require(enqueued["id"] as? String)
        #expect(enqueued["position"] as? Int == 1)

        let info = try await queue.client.inspector.status(id)
        #expect(info.model == "sdxl" && info.prompt == "a watercolour of Kyoto from Python" && info.user == "py-user")
        let worker = queue.worker()
        defer { worker.close() }
        let claim = try await queue.claim(worker, model: "sdxl")
        #expect(claim.id == id && claim.payload.prompt == "a watercolour of Kyoto from Python")
        try await worker.progress(claim, stage: .generating, detail: ["enhanced_prompt": .string("Kyoto, watercolour")])
        try await worker.complete(claim, result: sampleResult)

        buffer.append(try await offPool {
            let rest = reader.readAllBytes()
            process.waitUntilExit()
            return rest
        })
        #expect(process.terminationStatus == 0)
        let lines = buffer.split(separator: UInt8(ascii: "\n")).dropFirst()
        let statuses = lines.compactMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }.compactMap { $0["status"] as? String }
        #expect(statuses.last == "completed")
        #expect(statuses.contains("generating"))
    }
}
