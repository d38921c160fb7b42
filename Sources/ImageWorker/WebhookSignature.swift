import COpenSSL

/// The `ImageQueue-Signature` header of a webhook POST: `t=<unix seconds>,v1=<hex>`, where
/// the hex is the HMAC-SHA256, keyed with the secret, of the bytes `"<t>.<body>"`
/// (docs/WEBHOOKS.md). Never logged.
public enum WebhookSignature {
    /// The header's name.
    public static let headerName = "ImageQueue-Signature"

    /// The header value for `body` sent at `timestamp` (unix seconds).
    public static func header(secret: String, timestamp: Int64, body: [UInt8]) -> String {
        "t=\(timestamp),v1=\(hex(hmacSHA256(key: Array(secret.utf8), message: Array("\(timestamp).".utf8) + body)))"
    }

    /// HMAC-SHA256 of `message` under `key` (OpenSSL's one-shot `HMAC`).
    public static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let made = key.withUnsafeBufferPointer { keyBytes in
            message.withUnsafeBufferPointer { messageBytes in
                HMAC(EVP_sha256(), keyBytes.baseAddress, Int32(keyBytes.count), messageBytes.baseAddress, messageBytes.count,
                     &digest, &length)
            }
        }
        precondition(made != nil && length == 32, "OpenSSL HMAC-SHA256 failed")
        return Array(digest.prefix(Int(length)))
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
