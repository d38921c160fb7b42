#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time in milliseconds since the Unix epoch (this host's clock; the queue's own
/// timestamps come from the Redis server's clock).
public func unixTimeMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

/// A job's id: `<model>-<suffix>`. The model is the text before the first `-`, so a job
/// can be found from its id alone.
public struct JobID: Sendable, Hashable, CustomStringConvertible {
    /// The id as text.
    public let rawValue: String
    /// The model the job belongs to.
    public let model: String

    /// Parses an id.
    /// - Throws: `ImageQueueError` `.invalidJobID` when it does not have the form `<model>-<suffix>`.
    public init(_ text: String) throws(ImageQueueError) {
        guard let dash = text.firstIndex(of: "-"), text.utf8.count <= 128 else {
            throw ImageQueueError(.invalidJobID, "'\(text.prefix(64))' is not a job id (expected <model>-<suffix>)")
        }
        let model = String(text[..<dash])
        let suffix = text[text.index(after: dash)...]
        guard QueueConfiguration.isValidModelName(model), !suffix.isEmpty,
              suffix.unicodeScalars.allSatisfy({ JobID.suffixCharacters.contains($0) }) else {
            throw ImageQueueError(.invalidJobID, "'\(text.prefix(64))' is not a job id (expected <model>-<suffix>)")
        }
        rawValue = text
        self.model = model
    }

    private init(model: String, suffix: String) {
        self.model = model
        rawValue = model + "-" + suffix
    }

    /// A new id: the model, then a 26-character time-ordered random suffix (ULID layout,
    /// lowercase Crockford base32).
    public static func make(model: String) -> JobID {
        let milliseconds = UInt64(unixTimeMilliseconds())
        var random = SystemRandomNumberGenerator()
        let high = random.next() as UInt64
        let low = random.next() as UInt64
        let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)
        var characters: [UInt8] = []
        characters.reserveCapacity(26)
        for shift in stride(from: 45, through: 0, by: -5) { characters.append(alphabet[Int((milliseconds >> UInt64(shift)) & 31)]) }
        // 80 random bits as 16 characters.
        for index in 0..<16 {
            let bits = index < 12 ? (high >> UInt64(index * 5)) : (low >> UInt64((index - 12) * 5))
            characters.append(alphabet[Int(bits & 31)])
        }
        return JobID(model: model, suffix: String(decoding: characters, as: UTF8.self))
    }

    private static let suffixCharacters = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-".unicodeScalars)

    public var description: String { rawValue }
}
