import Foundation

/// `Tests/Fakes/webhook_receiver.py` on a free loopback port: verifies each delivery's
/// ImageQueue-Signature with `secret`, answers 500 to the first `failFirst` verified
/// deliveries of each job, can hold deliveries open, and answers 200 otherwise.
public final class WebhookReceiver: Sendable {
    private let server: FakeServerProcess

    /// One delivery as the receiver saw it.
    public struct Delivery: Sendable {
        public let seq: Int
        public let jobID: String?
        public let rev: Int?
        public let status: String?
        public let verified: Bool
        public let contentType: String?
        /// 500, 401 or 200; nil when held or dropped.
        public let answer: Int?
        /// `answered`, `held`, `dropped`, `client_closed`.
        public let outcome: String

        /// A verified delivery answered 200: the receiver accepted it.
        public var accepted: Bool { verified && answer == 200 && outcome == "answered" }
    }

    /// Starts the receiver with the secret in its environment (never on its command line).
    public static func start(secret: String, failFirst: Int = 2) async throws -> WebhookReceiver {
        WebhookReceiver(server: try await FakeServerProcess.start("webhook_receiver.py", arguments: ["--fail-first", "\(failFirst)"],
                                                                  environment: ["IMAGEQUEUE_WEBHOOK_SECRET": secret]))
    }

    private init(server: FakeServerProcess) { self.server = server }

    /// The URL deliveries go to.
    public var url: String { server.baseURL + "/hook" }

    /// Holds the next `count` deliveries that would be accepted, without answering them.
    public func hold(_ count: Int) async throws { try await server.post("/_control/hold", ["count": count]) }

    /// Ends every held delivery by closing its connection (no answer).
    public func release() async throws { try await server.post("/_control/release", [:]) }

    /// How many deliveries are held open right now.
    public func holding() async throws -> Int { (try await server.object("/_control/state")["holding"] as? Int) ?? 0 }

    /// Every delivery so far, in arrival order.
    public func deliveries() async throws -> [Delivery] {
        try await server.list("/_control/requests").map { entry in
            Delivery(seq: entry["seq"] as? Int ?? 0, jobID: entry["job_id"] as? String, rev: entry["rev"] as? Int,
                     status: entry["status"] as? String, verified: entry["verified"] as? Bool ?? false,
                     contentType: entry["content_type"] as? String, answer: entry["answer"] as? Int,
                     outcome: entry["outcome"] as? String ?? "")
        }
    }
}
