import RedisClient
import Testing

/// `RedisError`'s server code, detail and retry advice.
@Suite struct RedisErrorTests {
    @Test func serverCodeAndDetail() {
        let error = RedisError(.server, "NOSCRIPT No matching script. Please use EVAL.")
        #expect(error.serverCode == "NOSCRIPT")
        #expect(error.serverDetail == "No matching script. Please use EVAL.")
        #expect(RedisError(.server, "STALE_TOKEN").serverDetail == "")
        #expect(RedisError(.timeout, "ERR x").serverCode == nil)
    }

    @Test func transientKinds() {
        #expect(RedisError(.connectionFailed, "x").isTransient)
        #expect(RedisError(.connectionLost, "x").isTransient)
        #expect(RedisError(.timeout, "x").isTransient)
        #expect(RedisError(.server, "LOADING Redis is loading the dataset in memory").isTransient)
        #expect(RedisError(.server, "READONLY You can't write against a read only replica.").isTransient)
        #expect(!RedisError(.server, "WRONGTYPE Operation against a key holding the wrong kind of value").isTransient)
        #expect(!RedisError(.authentication, "x").isTransient)
        #expect(!RedisError(.cancelled, "x").isTransient)
        #expect(!RedisError(.closed, "x").isTransient)
        #expect(!RedisError(.invalidURL, "x").isTransient)
    }

    @Test func descriptionNamesTheKind() {
        #expect(RedisError(.timeout, "no reply").description == "redis timeout: no reply")
    }
}
