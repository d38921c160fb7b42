/// Redis Cluster's key-to-slot mapping: CRC16 (XMODEM: polynomial 0x1021, initial value 0)
/// of the key, or of its hash tag, modulo 16384.
public enum RedisClusterSlot {
    /// The number of slots in a Redis Cluster.
    public static let count = 16384

    /// The slot of `key`. When the key holds a `{...}` with at least one byte between the
    /// first `{` and the first `}` after it, only those bytes are hashed, so `iq:{flux}:pending`
    /// and `iq:{flux}:active` share a slot.
    public static func slot(of key: [UInt8]) -> Int {
        key.withUnsafeBufferPointer { bytes in
            var start = 0
            var end = bytes.count
            if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
               let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
                start = open + 1
                end = close
            }
            return Int(crc16(bytes[start..<end]) & 0x3FFF)
        }
    }

    /// The slot of a key given as text.
    public static func slot(of key: String) -> Int { slot(of: Array(key.utf8)) }

    /// CRC16/XMODEM of `bytes` (`"123456789"` gives 0x31C3).
    static func crc16(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
        }
        return crc
    }

    /// CRC16/XMODEM of an array.
    static func crc16(_ bytes: [UInt8]) -> UInt16 {
        bytes.withUnsafeBufferPointer { crc16($0[...]) }
    }

    private static let table: [UInt16] = (0..<256).map { index in
        var value = UInt16(index) << 8
        for _ in 0..<8 { value = value & 0x8000 != 0 ? (value << 1) ^ 0x1021 : value << 1 }
        return value
    }
}
