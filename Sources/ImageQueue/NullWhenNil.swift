/// An optional property that synthesized `Encodable` conformance writes as `null` when it is
/// nil, where it would otherwise leave the key out: the answers of the API and of `--json`
/// keep one shape, every key present, and a property added later is encoded without a
/// hand-written `encode(to:)` to forget it in. Decoding takes `null` and an absent key alike.
@propertyWrapper
public struct NullWhenNil<Value> {
    public var wrappedValue: Value?

    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }
}

extension NullWhenNil: Sendable where Value: Sendable {}
extension NullWhenNil: Equatable where Value: Equatable {}

extension NullWhenNil: Encodable where Value: Encodable {
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

extension NullWhenNil: Decodable where Value: Decodable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
    }
}

extension KeyedDecodingContainer {
    /// A `NullWhenNil` property whose key is absent decodes as nil (synthesized decoding
    /// would demand the key).
    public func decode<Value: Decodable>(_ type: NullWhenNil<Value>.Type, forKey key: Key) throws -> NullWhenNil<Value> {
        NullWhenNil(wrappedValue: try decodeIfPresent(Value.self, forKey: key))
    }
}
