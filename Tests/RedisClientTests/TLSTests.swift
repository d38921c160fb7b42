import Foundation
import RedisClient
import Testing
import TestSupport

/// `rediss://` against real TLS-only redis-servers (TestSupport's `TLSMaterial`): commands,
/// large values, blocking commands, pub/sub and scripts over TLS; reconnects; host name and
/// address checks; mutual TLS; and every way the setup can be wrong, each a `.tls` error
/// saying what happened in one line, without the password or any key.
@Suite(.runsClients) struct TLSTests {
    static let password = "s3cret-pass-XYZ"

    /// Settings that trust the test CA.
    static func trusting(_ material: TLSMaterial, serverName: String? = nil) -> RedisTLS {
        RedisTLS(caFile: material.caFile, serverName: serverName)
    }

    /// A connection to `url` with `tls` (nil: what the URL says); `failFast` shortens the
    /// connect timeout and the reconnect deadline, for tests that expect a failure.
    static func tlsConnection(_ url: String, _ tls: RedisTLS?, clientName: String? = nil,
                              failFast: Bool = false) throws -> RedisConnection {
        try connection(to: url, clientName: clientName) { configuration in
            if let tls { configuration.useTLS(tls) }
            if failFast {
                configuration.connectTimeout = .seconds(1)
                configuration.reconnectDeadline = .milliseconds(300)
            }
        }
    }

    /// `rediss://:<password>@127.0.0.1:<port>`: failing cases carry the password, so each one
    /// checks that it is not shown.
    static func urlWithPassword(_ server: RedisServer, host: String = "127.0.0.1", scheme: String = "rediss") -> String {
        "\(scheme)://:\(password)@\(host):\(server.port)"
    }

    /// The error a PING on `connection` fails with, checked to show neither the password nor key material.
    static func pingFailure(_ connection: RedisConnection,
                            sourceLocation: SourceLocation = #_sourceLocation) async -> RedisError? {
        let error = await redisError(sourceLocation: sourceLocation) { try await connection.send("PING") }
        if let error { expectNoSecrets(in: error, sourceLocation: sourceLocation) }
        return error
    }

    static func expectNoSecrets(in error: RedisError, sourceLocation: SourceLocation = #_sourceLocation) {
        for text in [error.message, error.description, String(describing: error), String(reflecting: error)] {
            #expect(!text.contains(password), "the password is shown: \(text)", sourceLocation: sourceLocation)
            #expect(!text.contains("PRIVATE KEY"), "key material is shown: \(text)", sourceLocation: sourceLocation)
            #expect(!text.contains("BEGIN"), "PEM text is shown: \(text)", sourceLocation: sourceLocation)
        }
    }

    /// `error` is a `.tls` setup error whose one-line message contains `part`.
    static func expectTLSError(_ error: RedisError?, mentioning part: String,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        guard let error else { return }  // redisError has recorded the issue
        #expect(error.kind == .tls, "\(error)", sourceLocation: sourceLocation)
        #expect(error.message.contains(part), "\(error) does not mention \"\(part)\"", sourceLocation: sourceLocation)
        #expect(!error.message.contains("\n"), "more than one line: \(error)", sourceLocation: sourceLocation)
        #expect(error.isSetupError, sourceLocation: sourceLocation)
        #expect(!error.isTransient, sourceLocation: sourceLocation)
    }

    /// `count` bytes with every byte value, in no short repeating pattern.
    static func largeValue(_ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 7) }
    }

    // MARK: - Commands over TLS

    @Test func commandsRunOverTLS() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let redis = try Self.tlsConnection(server.tlsURL, Self.trusting(material))
        let key = TestEnvironment.uniquePrefix("tls-cmd")
        let value: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF, 0x15, 0x16, 0x03, 0x01, 0x00]
        #expect(try await redis.send("PING") == .status("PONG"))
        #expect(try await redis.send("SET", key, value) == .status("OK"))
        #expect(try await redis.send("GET", key) == .bulk(value))
        #expect(try await redis.send("INCR", key + ":n") == .integer(1))
        #expect(try await redis.send("INCR", key + ":n") == .integer(2))
        #expect(redis.endpointDescription.hasPrefix("rediss://"))
        // The server listens on its TLS port only: whatever answered, answered over TLS.
        #expect(try await redis.send("CONFIG", "GET", "port") == .array([bulk("port"), bulk("0")]))
        #expect(try await redis.send("CONFIG", "GET", "tls-port") == .array([bulk("tls-port"), bulk(String(server.port))]))
    }

    @Test func pipelineOf1000CommandsKeepsOrder() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let redis = try Self.tlsConnection(server.tlsURL, Self.trusting(material))
        let key = TestEnvironment.uniquePrefix("tls-pipe")
        let commands = (1...1000).map { index in
            index.isMultiple(of: 2) ? RedisCommand("RPUSH", key, index) : RedisCommand("LLEN", key)
        }
        let replies = try await redis.pipeline(commands)
        // RPUSH of the n-th even number returns n; LLEN before it returns n - 1.
        #expect(replies == (1...1000).map { .integer(Int64($0 / 2)) })
        #expect(try await redis.send("LINDEX", key, -1) == bulk("1000"))
    }

    @Test func aMegabyteValueRoundTripsByteIdentical() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let redis = try Self.tlsConnection(server.tlsURL, Self.trusting(material))
        let key = TestEnvironment.uniquePrefix("tls-large")
        // Far more than a TLS record (16 KiB) and a loopback socket buffer: partial reads and
        // writes. Not more: the worker's memory test measures this process's peak meanwhile.
        let value = Self.largeValue(1 << 20)
        #expect(try await redis.send("SET", key, value) == .status("OK"))
        #expect(try await redis.send("STRLEN", key) == .integer(Int64(value.count)))
        let read = try await redis.send("GET", key)
        #expect(read.bytes?.count == value.count)
        #expect(read == .bulk(value))
        // Both ways at once: the value goes out while the previous reply comes in.
        let replies = try await redis.pipeline([RedisCommand("GET", key), RedisCommand(arguments: [Array("SET".utf8), Array((key + ":2").utf8), value]),
                                                RedisCommand("GET", key + ":2")])
        #expect(replies == [.bulk(value), .status("OK"), .bulk(value)])
    }

    @Test func blockingPopIsAnsweredByAPushFromAnotherConnection() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let name = TestEnvironment.uniquePrefix("tls-waiter")
        let waiter = try Self.tlsConnection(server.tlsURL, Self.trusting(material), clientName: name)
        let other = try Self.tlsConnection(server.tlsURL, Self.trusting(material))
        let key = TestEnvironment.uniquePrefix("tls-blpop")
        let popped = Task { try await waiter.send(RedisCommand("BLPOP", key, 30), timeout: .seconds(35)) }
        let blocked = try await eventually { try await blockedClients(named: name, on: other) == 1 }
        #expect(blocked, "BLPOP never blocked in Redis")
        #expect(try await other.send("RPUSH", key, "job-1") == .integer(1))
        #expect(try await popped.value == .array([bulk(key), bulk("job-1")]))
        #expect(try await other.send("LLEN", key) == .integer(0))
    }

    @Test func pubSubDeliversOverTLS() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        var configuration = try RedisConfiguration(url: server.tlsURL)
        configuration.useTLS(Self.trusting(material))
        let subscriber = runInTest(RedisSubscriber(configuration: configuration))
        let publisher = try Self.tlsConnection(server.tlsURL, Self.trusting(material))
        let channel = TestEnvironment.uniquePrefix("tls-ch")
        let reader = StreamReader(try await subscriber.subscribe([channel]))
        let payload: [UInt8] = [0x00, 0x0D, 0x0A, 0xFF, 0x68, 0x69]
        #expect(try await publisher.send("PUBLISH", channel, "first") == .integer(1))
        #expect(try await publisher.send("PUBLISH", channel, payload) == .integer(1))
        let large = Self.largeValue(300_000)
        #expect(try await publisher.send("PUBLISH", channel, large) == .integer(1))
        #expect(await eventually { reader.recorder.all.count >= 3 })
        #expect(reader.recorder.all == [
            .message(channel: channel, payload: Array("first".utf8)),
            .message(channel: channel, payload: payload),
            .message(channel: channel, payload: large),
        ])
        await reader.stop()
    }

    @Test func scriptsRunWithEvalshaOverTLS() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let redis = try Self.tlsConnection(server.tlsURL, Self.trusting(material))
        let script = RedisScript(name: "echoOverTLS", source: "return {KEYS[1], ARGV[1], #KEYS, #ARGV}")
        for index in 0..<3 {
            let reply = try await redis.send(.script(script, keys: ["k"], arguments: [index]))
            #expect(reply == .array([bulk("k"), bulk(String(index)), .integer(1), .integer(1)]))
        }
        #expect(script.sha?.count == 40)
        let evalsha = try await infoField("cmdstat_evalsha", section: "commandstats", on: redis)
        #expect(evalsha?.hasPrefix("calls=3,") == true)
    }

    // MARK: - Reconnect

    @Test func connectionWorksAgainAfterTheTLSServerRestarts() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let redis = try Self.tlsConnection(server.tlsURL, Self.trusting(material))
        let script = RedisScript(name: "one", source: "return 1")
        #expect(try await redis.send(.script(script, keys: [], arguments: [])) == .integer(1))
        let key = TestEnvironment.uniquePrefix("tls-restart")
        #expect(try await redis.send("SET", key, "before") == .status("OK"))
        try await server.restart()
        // A new server (no persistence): a new TLS session on the same connection object.
        #expect(try await redis.send("GET", key) == .null)
        #expect(try await redis.send("SET", key, "after") == .status("OK"))
        #expect(try await redis.send("GET", key) == bulk("after"))
        // Its scripts are loaded again over the new session.
        #expect(try await redis.send(.script(script, keys: [], arguments: [])) == .integer(1))
    }

    @Test func subscriberRenewsItsSubscriptionAfterTheTLSServerRestarts() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        var configuration = try RedisConfiguration(url: server.tlsURL)
        configuration.useTLS(Self.trusting(material))
        let subscriber = runInTest(RedisSubscriber(configuration: configuration))
        let channel = TestEnvironment.uniquePrefix("tls-renew")
        let reader = StreamReader(try await subscriber.subscribe([channel]))
        try await server.restart()
        #expect(await eventually { reader.recorder.all.contains(.resubscribed) })
        let publisher = try Self.tlsConnection(server.tlsURL, Self.trusting(material))
        #expect(try await publisher.send("PUBLISH", channel, "after-restart") == .integer(1))
        #expect(await reader.waitFor("after-restart", on: channel))
        await reader.stop()
    }

    // MARK: - Names and addresses

    @Test func hostNameAndIPAddressURLsBothVerify() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let byName = try Self.tlsConnection("rediss://localhost:\(server.port)", Self.trusting(material))
        let byAddress = try Self.tlsConnection("rediss://127.0.0.1:\(server.port)", Self.trusting(material))
        #expect(try await byName.send("PING") == .status("PONG"))
        #expect(try await byAddress.send("PING") == .status("PONG"))
    }

    @Test func serverNameLocalhostWithAnIPAddressURLVerifies() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let redis = try Self.tlsConnection(server.tlsURL, Self.trusting(material, serverName: "localhost"))
        #expect(try await redis.send("PING") == .status("PONG"))
    }

    @Test func tlsSetOnTheEndpointItselfWorks() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let endpoint = RedisEndpoint(address: .tcp(host: "127.0.0.1", port: server.port), tls: Self.trusting(material))
        let redis = runInTest(RedisConnection(configuration: RedisConfiguration(endpoint: endpoint)))
        #expect(try await redis.send("PING") == .status("PONG"))
        #expect(redis.endpointDescription == "rediss://127.0.0.1:\(server.port)")
    }

    // MARK: - Mutual TLS

    @Test func mutualTLSWorksWithTheClientCertificate() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, authClients: true)
        let tls = RedisTLS(caFile: material.caFile, certificateFile: material.clientCertificate, keyFile: material.clientKey)
        let redis = try Self.tlsConnection(server.tlsURL, tls)
        let key = TestEnvironment.uniquePrefix("tls-mutual")
        #expect(try await redis.send("SET", key, "v") == .status("OK"))
        #expect(try await redis.send("GET", key) == bulk("v"))
    }

    @Test func mutualTLSWithoutAClientCertificateFails() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, authClients: true)
        // Both with a first command of our own (AUTH) and with only the connect's PING.
        for url in [Self.urlWithPassword(server), server.tlsURL] {
            let redis = try Self.tlsConnection(url, Self.trusting(material), failFast: true)
            let error = await Self.pingFailure(redis)
            Self.expectTLSError(error, mentioning: "requires a client certificate")
        }
    }

    @Test func mutualTLSWithAnUntrustedClientCertificateFails() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, authClients: true)
        let tls = RedisTLS(caFile: material.caFile, certificateFile: material.untrustedClientCertificate,
                           keyFile: material.untrustedClientKey)
        for url in [Self.urlWithPassword(server), server.tlsURL] {
            let redis = try Self.tlsConnection(url, tls, failFast: true)
            let error = await Self.pingFailure(redis)
            Self.expectTLSError(error, mentioning: "the server refused our client certificate")
        }
    }

    // MARK: - The server's certificate refused

    @Test func certificateFromAnUnknownCAIsRefused() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let redis = try Self.tlsConnection(Self.urlWithPassword(server), RedisTLS(caFile: material.unknownCAFile), failFast: true)
        let error = await Self.pingFailure(redis)
        Self.expectTLSError(error, mentioning: "signed by an unknown CA")
    }

    @Test func systemTrustStoreDoesNotTrustTheTestCA() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        // rediss:// with no settings: the system's store.
        let redis = try Self.tlsConnection(Self.urlWithPassword(server), nil, failFast: true)
        let error = await Self.pingFailure(redis)
        Self.expectTLSError(error, mentioning: "signed by an unknown CA")
    }

    @Test func certificateForAnotherHostIsRefused() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, certificate: material.otherHostServerCertificate,
                                                     key: material.otherHostServerKey)
        for host in ["127.0.0.1", "localhost"] {
            let redis = try Self.tlsConnection(Self.urlWithPassword(server, host: host), Self.trusting(material), failFast: true)
            let error = await Self.pingFailure(redis)
            Self.expectTLSError(error, mentioning: "certificate is not for \(host)")
        }
        // The name it does list verifies.
        let named = try Self.tlsConnection(server.tlsURL, Self.trusting(material, serverName: "other.example"))
        #expect(try await named.send("PING") == .status("PONG"))
    }

    @Test func wrongServerNameIsRefused() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let redis = try Self.tlsConnection(Self.urlWithPassword(server), Self.trusting(material, serverName: "wrong.example"),
                                           failFast: true)
        let error = await Self.pingFailure(redis)
        Self.expectTLSError(error, mentioning: "certificate is not for wrong.example")
    }

    @Test func expiredCertificateIsRefused() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, certificate: material.expiredServerCertificate,
                                                     key: material.expiredServerKey)
        let redis = try Self.tlsConnection(Self.urlWithPassword(server), Self.trusting(material), failFast: true)
        let error = await Self.pingFailure(redis)
        Self.expectTLSError(error, mentioning: "certificate has expired")
    }

    @Test func aTLSErrorIsNotRetriedUntilTheReconnectDeadline() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let redis = try connection(to: Self.urlWithPassword(server)) {
            $0.useTLS(RedisTLS(caFile: material.unknownCAFile))
            $0.reconnectDeadline = .seconds(120)
        }
        let started = ContinuousClock.now
        let error = await Self.pingFailure(redis)
        // Retrying cannot help: it fails at the first attempt, long before the deadline.
        #expect(ContinuousClock.now - started < .seconds(60))
        Self.expectTLSError(error, mentioning: "unknown CA")
        // And the next command fails the same way.
        Self.expectTLSError(await Self.pingFailure(redis), mentioning: "unknown CA")
    }

    @Test func subscribeFailsWithTheTLSError() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        var configuration = try RedisConfiguration(url: Self.urlWithPassword(server))
        configuration.useTLS(RedisTLS(caFile: material.unknownCAFile))
        configuration.connectTimeout = .seconds(1)
        configuration.reconnectDeadline = .milliseconds(300)
        let subscriber = runInTest(RedisSubscriber(configuration: configuration))
        let error = await redisError { _ = try await subscriber.subscribe([TestEnvironment.uniquePrefix("tls-sub")]) }
        if let error { Self.expectNoSecrets(in: error) }
        Self.expectTLSError(error, mentioning: "signed by an unknown CA")
    }

    // MARK: - The wrong protocol

    @Test func tlsSpokenToAPlaintextPortFails() async throws {
        let plain = try await RedisServer.launch()
        let material = try await TLSMaterial.shared()
        let redis = try Self.tlsConnection(Self.urlWithPassword(plain), Self.trusting(material), failFast: true)
        let error = await Self.pingFailure(redis)
        // Depending on the bytes of the ClientHello, Redis answers with an error (`.tls`: "does
        // not speak TLS"), closes, or waits for the rest of a line (`.timeout` in the handshake).
        #expect(error?.message.contains("TLS") == true, "\(String(describing: error))")
        #expect(error?.kind != .protocolError)
    }

    @Test func plaintextSpokenToATLSPortFails() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        // With AUTH on connect: the connect's round trip says what is wrong.
        let authenticating = try Self.tlsConnection(Self.urlWithPassword(server, scheme: "redis"), nil, failFast: true)
        let error = await Self.pingFailure(authenticating)
        #expect(error?.message.contains("rediss://") == true, "\(String(describing: error))")
        #expect(error?.message.contains("TLS") == true, "\(String(describing: error))")

        // With nothing else to send on connect (no password, no client name), the connect's
        // PING says it too.
        let bare = try Self.tlsConnection(server.url, nil, failFast: true)
        let bareError = await Self.pingFailure(bare)
        #expect(bareError?.kind == .connectionFailed, "\(String(describing: bareError))")
        #expect(bareError?.message.contains("rediss://") == true, "\(String(describing: bareError))")
    }

    // MARK: - Files

    @Test func missingCAFileIsNamed() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, extraArguments: ["--requirepass", Self.password])
        let missing = "\(material.directory)/missing-\(UUID().uuidString.prefix(8))-ca.crt"
        let redis = try Self.tlsConnection(Self.urlWithPassword(server), RedisTLS(caFile: missing), failFast: true)
        let error = await Self.pingFailure(redis)
        Self.expectTLSError(error, mentioning: "cannot read the TLS CA file \(missing)")
        // A failure is not kept: once the file is there, the next connect reads it.
        try FileManager.default.copyItem(atPath: material.caFile, toPath: missing)
        #expect(try await redis.send("PING") == .status("PONG"))
    }

    @Test func unreadableClientKeyIsNamed() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, authClients: true)
        let missing = "\(material.directory)/missing-\(UUID().uuidString.prefix(8)).key"
        // A key file that does not exist, and one that holds a certificate, not a key.
        for keyFile in [missing, material.caFile] {
            let tls = RedisTLS(caFile: material.caFile, certificateFile: material.clientCertificate, keyFile: keyFile)
            let redis = try Self.tlsConnection(Self.urlWithPassword(server), tls, failFast: true)
            let error = await Self.pingFailure(redis)
            Self.expectTLSError(error, mentioning: "cannot read the TLS client key \(keyFile)")
        }
    }

    @Test func unreadableClientCertificateIsNamed() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, authClients: true)
        let missing = "\(material.directory)/missing-\(UUID().uuidString.prefix(8)).crt"
        // Missing, and a key where the certificate should be (its PEM text must not be shown).
        for certificateFile in [missing, material.clientKey] {
            let tls = RedisTLS(caFile: material.caFile, certificateFile: certificateFile, keyFile: material.clientKey)
            let redis = try Self.tlsConnection(Self.urlWithPassword(server), tls, failFast: true)
            let error = await Self.pingFailure(redis)
            Self.expectTLSError(error, mentioning: "cannot read the TLS client certificate \(certificateFile)")
        }
    }

    @Test func aKeyGivenAsTheCAFileIsRefusedWithoutShowingIt() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material)
        let redis = try Self.tlsConnection(Self.urlWithPassword(server), RedisTLS(caFile: material.serverKey), failFast: true)
        let error = await Self.pingFailure(redis)
        Self.expectTLSError(error, mentioning: "cannot read the TLS CA file \(material.serverKey)")
    }

    @Test func certificateWithoutKeyAndKeyWithoutCertificateAreRefused() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, authClients: true)
        let certificateOnly = RedisTLS(caFile: material.caFile, certificateFile: material.clientCertificate)
        let first = await Self.pingFailure(try Self.tlsConnection(Self.urlWithPassword(server), certificateOnly, failFast: true))
        Self.expectTLSError(first, mentioning: "the TLS client certificate \(material.clientCertificate) needs its key file too")
        let keyOnly = RedisTLS(caFile: material.caFile, keyFile: material.clientKey)
        let second = await Self.pingFailure(try Self.tlsConnection(Self.urlWithPassword(server), keyOnly, failFast: true))
        Self.expectTLSError(second, mentioning: "the TLS client key \(material.clientKey) needs its certificate file too")
    }

    @Test func keyOfAnotherCertificateIsRefused() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, authClients: true)
        let tls = RedisTLS(caFile: material.caFile, certificateFile: material.clientCertificate, keyFile: material.serverKey)
        let error = await Self.pingFailure(try Self.tlsConnection(Self.urlWithPassword(server), tls, failFast: true))
        Self.expectTLSError(error, mentioning: "the TLS client key \(material.serverKey) is not the key of the certificate \(material.clientCertificate)")
    }

    // MARK: - Secrets

    @Test func passwordInTheURLWorksOverTLS() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, extraArguments: ["--requirepass", Self.password])
        let redis = try Self.tlsConnection(Self.urlWithPassword(server), Self.trusting(material))
        let key = TestEnvironment.uniquePrefix("tls-auth")
        #expect(try await redis.send("SET", key, "v") == .status("OK"))
        #expect(try await redis.send("GET", key) == bulk("v"))
        #expect(!redis.endpointDescription.contains(Self.password))

        // Without the password the server refuses the command; with a wrong one, the connect.
        let anonymous = try Self.tlsConnection(server.tlsURL, Self.trusting(material), failFast: true)
        let refused = await redisError { try await anonymous.send("GET", key) }
        #expect(refused?.serverCode == "NOAUTH")
        let wrong = try Self.tlsConnection("rediss://:not-\(Self.password)@127.0.0.1:\(server.port)", Self.trusting(material),
                                           failFast: true)
        let error = await Self.pingFailure(wrong)
        #expect(error?.kind == .authentication)
        #expect(error?.description.contains("not-") == false)
    }

    @Test func mutualTLSWithAPasswordWorks() async throws {
        let material = try await TLSMaterial.shared()
        let server = try await RedisServer.launchTLS(material: material, authClients: true,
                                                     extraArguments: ["--requirepass", Self.password])
        let tls = RedisTLS(caFile: material.caFile, certificateFile: material.clientCertificate, keyFile: material.clientKey)
        let redis = try Self.tlsConnection(Self.urlWithPassword(server, host: "localhost"), tls, clientName: "tls-mutual-auth")
        #expect(try await redis.send("PING") == .status("PONG"))
        #expect(try await redis.send("CLIENT", "GETNAME") == bulk("tls-mutual-auth"))
    }
}
