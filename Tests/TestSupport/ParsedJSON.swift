import Foundation
import TestSupport

/// A parsed JSON document, keeping integers apart from other numbers and `null` apart from
/// a missing key.
public enum ParsedJSON: Decodable, Equatable, Sendable, CustomStringConvertible {
    case null
    case integer(Int64)
    case number(Double)
    case bool(Bool)
    case string(String)
    case array([ParsedJSON])
    case object([String: ParsedJSON])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Int64.self) {
            self = .integer(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ParsedJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: ParsedJSON].self))
        }
    }

    /// Parses one JSON document (surrounding white space allowed).
    /// - Throws: `TestSetupError` quoting the text when it is not JSON.
    public static func parse(_ text: String) throws -> ParsedJSON {
        do {
            return try JSONDecoder().decode(ParsedJSON.self, from: Data(text.utf8))
        } catch {
            throw TestSetupError("not a JSON document: \(text.debugDescription)")
        }
    }

    public subscript(key: String) -> ParsedJSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var object: [String: ParsedJSON]? {
        if case .object(let members) = self { return members }
        return nil
    }

    public var array: [ParsedJSON]? {
        if case .array(let items) = self { return items }
        return nil
    }

    public var string: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    public var isNull: Bool { self == .null }

    public var description: String {
        switch self {
        case .null: "null"
        case .integer(let value): "\(value)"
        case .number(let value): "\(value)"
        case .bool(let value): "\(value)"
        case .string(let text): text.debugDescription
        case .array(let items): "[" + items.map(\.description).joined(separator: ",") + "]"
        case .object(let members):
            "{" + members.sorted { $0.key < $1.key }.map { "\($0.key.debugDescription):\($0.value)" }.joined(separator: ",") + "}"
        }
    }
}

/// Whether the JSON text writes `key`'s value as an integer literal (no fraction, no
/// exponent): `JSONDecoder` alone would also accept `1.0` as an integer.
public func writesInteger(_ json: String, key: String) -> Bool {
    guard let pattern = try? Regex("\"\(key)\"\\s*:\\s*-?[0-9]+\\s*[,}]") else { return false }
    return json.contains(pattern)
}
