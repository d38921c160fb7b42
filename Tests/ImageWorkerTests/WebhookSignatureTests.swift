import ImageQueue
import ImageQueueCommandLine
@testable import ImageWorker
import Testing

/// The webhook signature (HMAC-SHA256 through OpenSSL) and the worker's webhook settings.
struct WebhookSignatureTests {
    @Test func hmacMatchesTheRFC4231Vectors() {
        // RFC 4231, test cases 1 and 2.
        let key1 = [UInt8](repeating: 0x0b, count: 20)
        #expect(WebhookSignature.hex(WebhookSignature.hmacSHA256(key: key1, message: Array("Hi There".utf8)))
            == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(WebhookSignature.hex(WebhookSignature.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func theHeaderSignsTimestampDotBody() {
        let body = Array(#"{"v":1,"id":"flux-x","status":"completed","rev":3}"#.utf8)
        let header = WebhookSignature.header(secret: "whsec_test", timestamp: 1_700_000_000, body: body)
        let expected = WebhookSignature.hex(WebhookSignature.hmacSHA256(key: Array("whsec_test".utf8),
                                                                        message: Array("1700000000.".utf8) + body))
        #expect(header == "t=1700000000,v1=\(expected)")
        #expect(expected.count == 64 && expected.allSatisfy { "0123456789abcdef".contains($0) })
        // Another body, time or secret gives another signature.
        #expect(WebhookSignature.header(secret: "whsec_test", timestamp: 1_700_000_001, body: body) != header)
        #expect(WebhookSignature.header(secret: "whsec_other", timestamp: 1_700_000_000, body: body) != header)
        #expect(WebhookSignature.header(secret: "whsec_test", timestamp: 1_700_000_000, body: body + [0x20]) != header)
    }

    @Test func webhookSettingsAreReadAndTheSecretIsNeverDescribed() throws {
        let configuration = try WorkerConfiguration.load(environment: [
            "IMAGEQUEUE_WEBHOOK_SECRET": "whsec_do_not_print", "IMAGEQUEUE_WEBHOOK_RETRY_HOURS": "0.5",
            "IMAGEQUEUE_WEBHOOK_TIMEOUT": "2", "IMAGEQUEUE_WEBHOOK_ALLOW_HOSTS": "127.0.0.1,Hooks.Internal",
        ])
        #expect(configuration.webhookSecret == "whsec_do_not_print")
        #expect(configuration.webhookRetryWindow == .seconds(1800))
        #expect(configuration.webhookTimeout == .seconds(2) && configuration.webhookLease == .seconds(6))
        #expect(configuration.queue.webhookAllowHosts == ["127.0.0.1", "hooks.internal"])
        #expect(!"\(configuration)".contains("whsec_do_not_print"))
        #expect(!String(reflecting: configuration).contains("whsec_do_not_print"))
        let defaults = try WorkerConfiguration.load(environment: [:])
        #expect(defaults.webhookSecret == nil && defaults.webhookRetryWindow == .seconds(86_400) && defaults.webhookLease == .seconds(30))
        for bad in ["-1", "soon", "9000"] {
            let error = #expect(throws: ConfigurationError.self) {
                try WorkerConfiguration.load(environment: ["IMAGEQUEUE_WEBHOOK_RETRY_HOURS": bad])
            }
            #expect(error?.setting == "IMAGEQUEUE_WEBHOOK_RETRY_HOURS")
        }
    }
}
