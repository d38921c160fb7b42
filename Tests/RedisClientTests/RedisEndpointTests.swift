import RedisClient
import Testing

/// Parsing Redis URLs and printing them without their password.
@Suite struct RedisEndpointTests {
    @Test func hostPortAndDatabase() throws {
        let endpoint = try RedisEndpoint(url: "redis://cache.internal:6380/4")
        #expect(endpoint.address == .tcp(host: "cache.internal", port: 6380))
        #expect(endpoint.database == 4)
        #expect(endpoint.user == nil)
        #expect(endpoint.password == nil)
    }

    @Test func defaultsArePort6379AndDatabase0() throws {
        let endpoint = try RedisEndpoint(url: "redis://localhost")
        #expect(endpoint.address == .tcp(host: "localhost", port: 6379))
        #expect(endpoint.database == 0)
        let trailingSlash = try RedisEndpoint(url: "redis://localhost:6379/")
        #expect(trailingSlash.database == 0)
    }

    @Test func schemeIsCaseInsensitive() throws {
        let endpoint = try RedisEndpoint(url: "REDIS://h:1")
        #expect(endpoint.address == .tcp(host: "h", port: 1))
    }

    @Test func userAndPassword() throws {
        let endpoint = try RedisEndpoint(url: "redis://worker:wpass@10.0.0.5:7000/2")
        #expect(endpoint.user == "worker")
        #expect(endpoint.password == "wpass")
        #expect(endpoint.address == .tcp(host: "10.0.0.5", port: 7000))
        #expect(endpoint.database == 2)
    }

    @Test func passwordOnly() throws {
        let endpoint = try RedisEndpoint(url: "redis://:pw@h")
        #expect(endpoint.user == nil)
        #expect(endpoint.password == "pw")
        #expect(endpoint.address == .tcp(host: "h", port: 6379))
    }

    @Test func loneCredentialIsThePasswordAsRedisCliReadsIt() throws {
        let endpoint = try RedisEndpoint(url: "redis://secret@h:6379")
        #expect(endpoint.user == nil)
        #expect(endpoint.password == "secret")
    }

    @Test func percentEncodedCredentialsAreDecoded() throws {
        let endpoint = try RedisEndpoint(url: "redis://us%40er:p%40ss%3Aw%2Fd@h:6379")
        #expect(endpoint.user == "us@er")
        #expect(endpoint.password == "p@ss:w/d")
    }

    @Test func passwordMayContainAtAndColon() throws {
        let endpoint = try RedisEndpoint(url: "redis://u:a:b@c@h:1234")
        #expect(endpoint.user == "u")
        #expect(endpoint.password == "a:b@c")
        #expect(endpoint.address == .tcp(host: "h", port: 1234))
    }

    @Test func malformedPercentEscapeIsNotSilentlyShortened() {
        // "ab%zzcd" is not valid percent-encoding: it must be rejected or kept as written,
        // never turned into another password.
        do {
            let endpoint = try RedisEndpoint(url: "redis://:ab%zzcd@h")
            #expect(endpoint.password == "ab%zzcd")
        } catch let error as RedisError {
            #expect(error.kind == .invalidURL)
        }
    }

    // Found in the fuzzing work (docs/FUZZING.md): "%-0" became a NUL byte, "%+f" a control character.
    @Test(arguments: ["p%-0", "p%+f", "p%-f"])
    func signedPercentEscapeIsKeptAsWritten(password: String) throws {
        let endpoint = try RedisEndpoint(url: "redis://:\(password)@h")
        #expect(endpoint.password == password)
    }

    @Test func passwordAndDatabaseFromQuery() throws {
        let endpoint = try RedisEndpoint(url: "redis://h:1?db=5&password=qp")
        #expect(endpoint.database == 5)
        #expect(endpoint.password == "qp")
    }

    @Test func ipv6WithPort() throws {
        let endpoint = try RedisEndpoint(url: "redis://[::1]:6380")
        #expect(endpoint.address == .tcp(host: "::1", port: 6380))
        #expect(endpoint.description == "redis://[::1]:6380")
    }

    @Test func ipv6WithoutPortAndWithCredentials() throws {
        let endpoint = try RedisEndpoint(url: "redis://u:p@[fe80::1]/7")
        #expect(endpoint.address == .tcp(host: "fe80::1", port: 6379))
        #expect(endpoint.user == "u")
        #expect(endpoint.password == "p")
        #expect(endpoint.database == 7)
    }

    @Test func unixSocketWithQuery() throws {
        let endpoint = try RedisEndpoint(url: "unix:///var/run/redis/r.sock?db=2&password=x")
        #expect(endpoint.address == .unix(path: "/var/run/redis/r.sock"))
        #expect(endpoint.database == 2)
        #expect(endpoint.password == "x")
        #expect(endpoint.user == nil)
    }

    @Test func unixSocketWithUserAndPlusScheme() throws {
        let endpoint = try RedisEndpoint(url: "redis+unix:///tmp/r.sock?user=worker&password=w%26p")
        #expect(endpoint.address == .unix(path: "/tmp/r.sock"))
        #expect(endpoint.user == "worker")
        #expect(endpoint.password == "w&p")
        #expect(endpoint.database == 0)
    }

    // Found by fuzzing (ops/fuzz.sh config, docs/FUZZING.md): a query pair without a name crashed the parser.
    @Test(arguments: ["redis://h?=", "redis://h?=x&db=2", "redis://h?db=2&=", "unix:///tmp/r.sock?=&db=2"])
    func queryPairWithoutANameIsIgnored(url: String) throws {
        let endpoint = try RedisEndpoint(url: url)
        #expect(endpoint.user == nil)
        #expect(endpoint.password == nil)
        #expect(endpoint.database == (url.contains("db=2") ? 2 : 0))
    }

    @Test(arguments: [
        "redis://h:notaport",
        "redis://h:",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:-1",
        "redis://[::1]:99999",
        "redis://[::1",
        "redis://:6379",
        "redis://",
        "redis:///3",
        "redis://u:p@:6379",
        "redis://h/notadb",
        "redis://h/-2",
        "redis://h?db=x",
        "unix://relative/path",
        "unix://",
        "unix:///tmp/r.sock?db=two",
        "http://h:6379",
        "memcached://h",
        "localhost:6379",
        "",
    ])
    func invalidURLs(url: String) {
        #expect(throws: RedisError.self) { try RedisEndpoint(url: url) }
        do {
            _ = try RedisEndpoint(url: url)
        } catch {
            #expect(error.kind == .invalidURL)
            #expect(!error.message.isEmpty)
        }
    }

    @Test func unknownSchemeIsNamed() throws {
        let error = try #require(throws: RedisError.self) { try RedisEndpoint(url: "http://h:6379") }
        #expect(error.kind == .invalidURL)
        #expect(error.message.contains("http"))
    }

    @Test func rediss_URLsAskForTLSAndPrintAsRediss() throws {
        let endpoint = try RedisEndpoint(url: "rediss://alice:pw@h:6380/2")
        #expect(endpoint.tls == RedisTLS())
        #expect(endpoint.address == .tcp(host: "h", port: 6380))
        #expect(endpoint.user == "alice" && endpoint.password == "pw" && endpoint.database == 2)
        #expect(endpoint.description == "rediss://alice:***@h:6380/2")
        #expect(try RedisEndpoint(url: "redis://h").tls == nil)

        let cluster = try RedisConfiguration(url: "rediss+cluster://:pw@a:7000,b:7001")
        #expect(cluster.clusterSeeds.count == 2 && cluster.clusterSeeds.allSatisfy { $0.tls == RedisTLS() })
        #expect(cluster.endpointDescription == "rediss+cluster://:***@a:7000,b:7001")
        var configured = cluster
        configured.useTLS(RedisTLS(caFile: "/ca.pem", serverName: "redis.internal"))
        #expect(configured.clusterSeeds.allSatisfy { $0.tls?.serverName == "redis.internal" && $0.tls?.caFile == "/ca.pem" })
        #expect(configured.endpoint.tls?.caFile == "/ca.pem")
    }

    @Test(arguments: [
        "redis://u:topsecret-1@h:notaport",
        "redis://u:topsecret-1@:6379",
        "redis://u:topsecret-1@h/notadb",
        "redis://u:topsecret-1@[::1",
        "rediss://u:topsecret-1@h:0",
        "unix:///tmp/r.sock?password=topsecret-1&db=x",
    ])
    func invalidURLErrorsNeverShowThePassword(url: String) throws {
        let error = try #require(throws: RedisError.self) { try RedisEndpoint(url: url) }
        #expect(error.kind == .invalidURL)
        #expect(!error.message.contains("topsecret-1"))
        #expect(!error.description.contains("topsecret-1"))
    }

    @Test func descriptionMasksThePassword() throws {
        let endpoint = try RedisEndpoint(url: "redis://worker:hunter2-pw@cache:6380/3")
        #expect(endpoint.description == "redis://worker:***@cache:6380/3")
        #expect(!endpoint.description.contains("hunter2-pw"))
        #expect(!"\(endpoint)".contains("hunter2-pw"))
    }

    @Test func descriptionMasksALonePassword() throws {
        let endpoint = try RedisEndpoint(url: "redis://:hunter2-pw@cache")
        #expect(endpoint.description == "redis://:***@cache:6379")
        #expect(!endpoint.description.contains("hunter2-pw"))
    }

    @Test func descriptionOfAUnixEndpointMasksThePassword() throws {
        let endpoint = try RedisEndpoint(url: "unix:///tmp/r.sock?db=2&password=hunter2-pw")
        #expect(!endpoint.description.contains("hunter2-pw"))
        #expect(endpoint.description.hasPrefix("unix:///tmp/r.sock"))
        #expect(endpoint.description.contains("db=2"))
    }

    @Test func descriptionWithoutCredentials() throws {
        #expect(try RedisEndpoint(url: "redis://h").description == "redis://h:6379")
        #expect(try RedisEndpoint(url: "unix:///tmp/r.sock").description == "unix:///tmp/r.sock")
    }

    @Test func configurationFromURLCarriesTheEndpoint() throws {
        let configuration = try RedisConfiguration(url: "redis://:pw@h:7/1", clientName: "iq-test")
        #expect(configuration.endpoint == RedisEndpoint(address: .tcp(host: "h", port: 7), password: "pw", database: 1))
        #expect(configuration.clientName == "iq-test")
        #expect(throws: RedisError.self) { try RedisConfiguration(url: "nope") }
    }
}
