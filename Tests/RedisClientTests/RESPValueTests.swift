import RedisClient
import Testing

/// The accessors of `RESPValue` and the words of `RedisArgument`.
@Suite struct RESPValueTests {
    @Test func stringAccessor() {
        #expect(RESPValue.status("OK").string == "OK")
        #expect(bulk("héllo").string == "héllo")
        #expect(RESPValue.integer(-7).string == "-7")
        #expect(RESPValue.null.string == nil)
        #expect(RESPValue.error("ERR x").string == nil)
        #expect(RESPValue.array([bulk("a")]).string == nil)
    }

    @Test func intAccessor() {
        #expect(RESPValue.integer(42).int == 42)
        #expect(bulk("-13").int == -13)
        #expect(RESPValue.status("9").int == 9)
        #expect(bulk("4.5").int == nil)
        #expect(RESPValue.null.int == nil)
        #expect(RESPValue.error("1").int == nil)
    }

    @Test func bytesArrayAndNull() {
        #expect(RESPValue.bulk([0, 255]).bytes == [0, 255])
        #expect(RESPValue.status("OK").bytes == nil)
        #expect(RESPValue.array([.null, .integer(1)]).array == [.null, .integer(1)])
        #expect(RESPValue.integer(1).array == nil)
        #expect(RESPValue.null.isNull)
        #expect(!RESPValue.bulk([]).isNull)
        #expect(!RESPValue.array([]).isNull)
    }

    @Test func orThrowTurnsAnErrorReplyIntoAServerError() throws {
        #expect(try RESPValue.integer(3).orThrow() == .integer(3))
        let error = try #require(throws: RedisError.self) { try RESPValue.error("WRONGTYPE bad key").orThrow() }
        #expect(error.kind == .server)
        #expect(error.serverCode == "WRONGTYPE")
        #expect(error.serverDetail == "bad key")
    }

    @Test func descriptionLooksLikeRESP() {
        #expect(RESPValue.array([.status("OK"), .error("ERR no"), .integer(5), bulk("x"), .null]).description
            == "[+OK, -ERR no, :5, \"x\", (nil)]")
    }

    @Test func argumentsAreTheirBytes() {
        #expect("añ".redisBytes == [0x61, 0xC3, 0xB1])
        #expect("abc".dropFirst().redisBytes == Array("bc".utf8))
        #expect(42.redisBytes == Array("42".utf8))
        #expect(Int64(-9).redisBytes == Array("-9".utf8))
        #expect([UInt8]([0, 13, 10, 255]).redisBytes == [0, 13, 10, 255])
    }
}
