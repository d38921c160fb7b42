import Foundation
import ImageWorker
import Testing
import TestSupport

/// The offline backend's PNG is a real image: right signature, header, checksums, and pixel
/// data that inflates to the declared size.
struct PlaceholderImageTests {
    static func render(_ prompt: String, model: String = "flux") async throws -> GeneratedImage {
        try #require(try await PlaceholderGenerator().generate(GenerationRequest(jobID: "\(model)-test", model: model, prompt: prompt)).first)
    }

    @Test func thePlaceholderIsAValid512PNG() async throws {
        let image = try await Self.render("a lighthouse at dusk")
        #expect(image.contentType == "image/png")
        #expect(image.placeholder)
        #expect(image.fileExtension == "png")
        let bytes = image.bytes
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(ImageFormat.contentType(of: bytes) == "image/png")

        // Walk the chunks, checking every length and CRC.
        var chunks: [(type: String, data: [UInt8])] = []
        var offset = 8
        while offset + 12 <= bytes.count {
            let length = Int(Self.bigEndian(bytes, offset))
            try #require(offset + 12 + length <= bytes.count, "chunk at \(offset) overruns the file")
            let typeAndData = Array(bytes[(offset + 4)..<(offset + 8 + length)])
            let type = String(decoding: typeAndData.prefix(4), as: UTF8.self)
            #expect(Self.bigEndian(bytes, offset + 8 + length) == Self.crc32(typeAndData), "CRC of \(type)")
            chunks.append((type, Array(typeAndData.dropFirst(4))))
            offset += 12 + length
        }
        #expect(offset == bytes.count)
        #expect(chunks.map(\.type) == ["IHDR", "IDAT", "IEND"])
        let header = try #require(chunks.first?.data)
        #expect(header.count == 13)
        #expect(Self.bigEndian(header, 0) == 512 && Self.bigEndian(header, 4) == 512)
        #expect(Array(header[8...]) == [8, 2, 0, 0, 0], "8-bit RGB, deflate, no interlace")

        // An independent decoder: Python's zlib inflates the IDAT data and checks its size.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("iq-placeholder-\(UUID().uuidString).png").path
        try await offPool { try Data(bytes).write(to: URL(fileURLWithPath: path)) }
        defer { try? FileManager.default.removeItem(atPath: path) }
        let script = """
            import struct, sys, zlib
            data = open(sys.argv[1], 'rb').read()
            pos, idat, kinds = 8, b'', []
            while pos < len(data):
                n, = struct.unpack('>I', data[pos:pos + 4])
                kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
                assert struct.unpack('>I', data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(kind + body), kind
                if kind == b'IHDR': width, height = struct.unpack('>II', body[:8])
                if kind == b'IDAT': idat += body
                kinds.append(kind.decode())
                pos += 12 + n
            raw = zlib.decompress(idat)
            stride = width * 3 + 1
            filters = all(raw[row * stride] <= 4 for row in range(height))
            print(' '.join(kinds), width, height, len(raw), len(raw) == height * stride, filters)
            """
        let result = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, path])
        #expect(result.status == 0, "python3: \(result.stderr)")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "IHDR IDAT IEND 512 512 786944 True True")
    }

    @Test func thePictureDependsOnThePromptAndModelOnly() async throws {
        let first = try await Self.render("a red fox")
        let again = try await Self.render("a red fox")
        let other = try await Self.render("a blue whale")
        let otherModel = try await Self.render("a red fox", model: "sdxl")
        #expect(first.bytes == again.bytes)
        #expect(first.bytes != other.bytes)
        #expect(first.bytes != otherModel.bytes)
    }

    static func bigEndian(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        bytes[offset..<(offset + 4)].reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// CRC-32 (ISO-HDLC), bit by bit: deliberately not the worker's table-driven one.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
}
