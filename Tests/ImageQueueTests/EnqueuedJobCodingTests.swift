import Foundation
@testable import ImageQueue
import Testing

/// `POST /v1/jobs` answers an `EnqueuedJob` as it encodes: every property always present.
@Suite struct EnqueuedJobCodingTests {
    @Test func aJobThatIsNotQueuedEncodesItsPositionAsNullAndDecodesBack() throws {
        let started = EnqueuedJob(id: "flux-01jb0000000000000000000000", model: "flux", status: .generating, position: nil, created: false)
        let data = try JSONEncoder().encode(started)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(Set(object.keys) == ["id", "model", "status", "position", "created"], "\(object)")
        #expect(object["position"] is NSNull, "\(String(decoding: data, as: UTF8.self))")
        #expect(try JSONDecoder().decode(EnqueuedJob.self, from: data) == started)

        let queued = EnqueuedJob(id: "flux-01jb0000000000000000000001", model: "flux", status: .queued, position: 3, created: true)
        let again = try JSONDecoder().decode(EnqueuedJob.self, from: JSONEncoder().encode(queued))
        #expect(again == queued)
    }
}
