/// A small PNG encoder and a prompt-derived pattern: enough for the offline backend to
/// produce a real image without zlib (the pixel data goes in stored deflate blocks).
enum PlaceholderImage {
    /// A `size`×`size` RGB PNG: a two-colour gradient with rings and stripes, all chosen by a
    /// hash of the prompt and model, so the same prompt gives the same picture. `variation`
    /// k > 0 (image k of a job that makes several) mixes k into the hash: another picture.
    static func render(prompt: String, model: String, size: Int, variation: Int = 0) -> [UInt8] {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in (model + "|" + prompt + (variation > 0 ? "#\(variation)" : "")).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01B3
        }
        func channel(_ shift: UInt64) -> Double { Double((hash >> shift) & 0xFF) }
        let from = (channel(0), channel(8), channel(16))
        let to = (255 - channel(24), 255 - channel(32), 255 - channel(40))
        let rings = 3 + Int((hash >> 48) % 6)
        let stripes = 4 + Int((hash >> 52) % 9)
        let centerX = Double(size) * (0.3 + Double((hash >> 56) % 40) / 100)
        let centerY = Double(size) * (0.3 + Double((hash >> 60) % 40) / 100)

        var raw: [UInt8] = []
        raw.reserveCapacity(size * (size * 3 + 1))
        for y in 0..<size {
            raw.append(0)  // filter: none
            for x in 0..<size {
                let t = Double(x + y) / Double(2 * size)
                var r = from.0 + (to.0 - from.0) * t
                var g = from.1 + (to.1 - from.1) * t
                var b = from.2 + (to.2 - from.2) * t
                let dx = Double(x) - centerX, dy = Double(y) - centerY
                let distance = (dx * dx + dy * dy).squareRoot() / Double(size)
                if Int(distance * Double(rings) * 4) % 2 == 0 { r = 255 - r * 0.6; g = 255 - g * 0.6 }
                if (x * stripes / size) % 2 == 0, y > size * 3 / 4 { b = b * 0.5 }
                raw.append(UInt8(max(0, min(255, r))))
                raw.append(UInt8(max(0, min(255, g))))
                raw.append(UInt8(max(0, min(255, b))))
            }
        }
        return png(width: size, height: size, rgb: raw)
    }

    static func png(width: Int, height: Int, rgb filtered: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header: [UInt8] = []
        header += bigEndian(UInt32(width)) + bigEndian(UInt32(height))
        header += [8, 2, 0, 0, 0]  // 8-bit RGB, deflate, no filter method, no interlace
        chunk("IHDR", header, into: &out)
        chunk("IDAT", zlibStored(filtered), into: &out)
        chunk("IEND", [], into: &out)
        return out
    }

    private static func chunk(_ type: String, _ data: [UInt8], into out: inout [UInt8]) {
        let typeBytes = Array(type.utf8)
        out += bigEndian(UInt32(data.count))
        out += typeBytes
        out += data
        out += bigEndian(crc32(typeBytes + data))
    }

    /// A zlib stream of stored (uncompressed) deflate blocks.
    private static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let length = min(65_535, data.count - offset)
            let final: UInt8 = offset + length == data.count ? 1 : 0
            out.append(final)
            out += [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)]
            out += data[offset..<(offset + length)]
            offset += length
        } while offset < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        out += bigEndian((b << 16) | a)
        return out
    }

    private static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}
