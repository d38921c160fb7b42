import RedisClient
import Testing

/// `redis+sentinel://` URLs as `RedisConfiguration(url:)` reads them; nothing is connected.
@Suite struct SentinelURLTests {
    @Test func sentinelsMasterNameAndDefaults() throws {
        let configuration = try RedisConfiguration(url: "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster")
        let sentinel = try #require(configuration.sentinel)
        #expect(sentinel.masterName == "mymaster")
        #expect(sentinel.sentinels.map(\.address) == [.tcp(host: "127.0.0.1", port: 26379), .tcp(host: "127.0.0.1", port: 26380),
                                                      .tcp(host: "127.0.0.1", port: 26381)])
        #expect(sentinel.password == nil)
        #expect(sentinel.sentinels.allSatisfy { $0.password == nil && $0.user == nil && $0.tls == nil })
        #expect(configuration.endpoint.database == 0)
        #expect(configuration.endpoint.password == nil)
        #expect(configuration.endpoint.tls == nil)
        #expect(!configuration.isCluster)
        #expect(configuration.clusterSeeds.isEmpty)
        #expect(configuration.endpointDescription == "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/mymaster")
        // One server at a time: a plain connection, not a cluster client.
        #expect(makeRedisClient(configuration: configuration) is RedisConnection)
    }

    @Test func aSentinelWithoutAPortIsOn26379() throws {
        let configuration = try RedisConfiguration(url: "redis+sentinel://127.0.0.1,127.0.0.1:5000/m")
        #expect(configuration.sentinel?.sentinels.map(\.address) == [.tcp(host: "127.0.0.1", port: 26379),
                                                                     .tcp(host: "127.0.0.1", port: 5000)])
    }

    @Test func theDatabaseAndTheCredentialsAreTheMasters() throws {
        let configuration = try RedisConfiguration(url: "redis+sentinel://app:s3cret-pw@127.0.0.1:26379,127.0.0.1:26380/cache/5")
        #expect(configuration.sentinel?.masterName == "cache")
        #expect(configuration.endpoint.database == 5)
        #expect(configuration.endpoint.user == "app")
        #expect(configuration.endpoint.password == "s3cret-pw")
        // The sentinels get none of it: their own password is set apart.
        #expect(configuration.sentinel?.sentinels.allSatisfy { $0.password == nil && $0.user == nil && $0.database == 0 } == true)
        #expect(configuration.sentinel?.password == nil)
        let description = configuration.endpointDescription
        #expect(!description.contains("s3cret-pw"), "the password is in \(description)")
        #expect(description == "redis+sentinel://app:***@127.0.0.1:26379,127.0.0.1:26380/cache/5")
    }

    @Test func aLonePasswordIsMasked() throws {
        let configuration = try RedisConfiguration(url: "redis+sentinel://:only-pw@127.0.0.1:26379/m")
        #expect(configuration.endpoint.password == "only-pw")
        #expect(configuration.endpoint.user == nil)
        #expect(!configuration.endpointDescription.contains("only-pw"))
        #expect(configuration.endpointDescription.contains("***"))
    }

    @Test func overTLSTheSentinelsAndTheMasterSpeakTLS() throws {
        let configuration = try RedisConfiguration(url: "rediss+sentinel://127.0.0.1:26379,127.0.0.1:26380/m")
        #expect(configuration.endpoint.tls != nil)
        #expect(configuration.sentinel?.sentinels.allSatisfy { $0.tls != nil } == true)
        #expect(configuration.endpointDescription.hasPrefix("rediss+sentinel://"))
    }

    static let badURLs: [(url: String, says: String)] = [
        ("redis+sentinel://:hunter2-pw@127.0.0.1:26379", "no master name"),
        ("redis+sentinel://:hunter2-pw@127.0.0.1:26379/", "no master name"),
        ("redis+sentinel://:hunter2-pw@127.0.0.1:99999/m", "127.0.0.1:99999"),
        ("redis+sentinel://:hunter2-pw@127.0.0.1:port/m", "127.0.0.1:port"),
        ("redis+sentinel://:hunter2-pw@127.0.0.1:26379,/m", "no sentinel"),
        ("redis+sentinel://:hunter2-pw@/m", "no sentinel"),
        ("redis+sentinel://:hunter2-pw@127.0.0.1:26379/m/x", "database"),
        ("redis+sentinel://:hunter2-pw@127.0.0.1:26379/m/-1", "database"),
        ("redis+sentinel://:hunter2-pw@127.0.0.1:26379/m?db=1", "query"),
    ]

    @Test(arguments: badURLs.map(\.url))
    func aBadURLIsInvalidAndKeepsThePasswordOut(_ url: String) throws {
        let says = try #require(Self.badURLs.first { $0.url == url }?.says)
        do {
            let configuration = try RedisConfiguration(url: url)
            Issue.record("accepted, as \(configuration.endpointDescription)")
        } catch {
            #expect(error.kind == .invalidURL)
            #expect(error.message.contains(says), "\(error.message)")
            #expect(!error.message.contains("hunter2-pw"), "the password is in the message")
            #expect(error.message.contains("redis+sentinel://"), "the message shows the expected form: \(error.message)")
        }
    }
}
