import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Certificates and keys for TLS tests, made with the `openssl` command: a test CA, server
/// certificates that are good, expired or for another host, a client certificate for mutual
/// TLS, and a second CA nobody trusts with a client certificate of its own. Every key is
/// EC P-256, unencrypted PEM.
public struct TLSMaterial: Sendable {
    /// The folder every file is in (removed when the test process exits).
    public let directory: String
    /// The trusted test CA (PEM).
    public let caFile: String
    /// Signed by the CA, SAN DNS:localhost, IP:127.0.0.1.
    public let serverCertificate: String
    public let serverKey: String
    /// Signed by the CA (for mutual TLS).
    public let clientCertificate: String
    public let clientKey: String
    /// Signed by the CA, SAN as `serverCertificate`, valid only on 1 January 2020.
    public let expiredServerCertificate: String
    public let expiredServerKey: String
    /// Signed by the CA, SAN DNS:other.example only.
    public let otherHostServerCertificate: String
    public let otherHostServerKey: String
    /// A second CA nobody trusts.
    public let unknownCAFile: String
    /// Signed by the unknown CA.
    public let untrustedClientCertificate: String
    public let untrustedClientKey: String

    /// Made once per test process with the `openssl` command (off the cooperative pool), in a temp folder removed at exit.
    public static func shared() async throws -> TLSMaterial {
        let making = once.withLock { made -> Task<TLSMaterial, any Error> in
            if let made { return made }
            let fresh = Task { try await make() }
            made = fresh
            return fresh
        }
        return try await making.value
    }

    private static let once = Mutex<Task<TLSMaterial, any Error>?>(nil)

    private init(directory: String) {
        func path(_ name: String) -> String { "\(directory)/\(name)" }
        self.directory = directory
        caFile = path("ca.crt")
        serverCertificate = path("server.crt")
        serverKey = path("server.key")
        clientCertificate = path("client.crt")
        clientKey = path("client.key")
        expiredServerCertificate = path("expired.crt")
        expiredServerKey = path("expired.key")
        otherHostServerCertificate = path("other-host.crt")
        otherHostServerKey = path("other-host.key")
        unknownCAFile = path("unknown-ca.crt")
        untrustedClientCertificate = path("untrusted-client.crt")
        untrustedClientKey = path("untrusted-client.key")
    }

    /// Runs every `openssl` command, one after the other (each waited for without blocking a thread).
    private static func make() async throws -> TLSMaterial {
        inProcessSetUp()
        let openssl = try opensslPath()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iq-tls-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        folders.withLock { _ = $0.insert(directory) }
        let material = TLSMaterial(directory: directory)
        let config = "\(directory)/openssl.cnf"
        try configuration(directory: directory).write(toFile: config, atomically: true, encoding: .utf8)
        // `openssl ca` keeps its records here (it alone can set a validity in the past in 3.0).
        try "".write(toFile: "\(directory)/index.txt", atomically: true, encoding: .utf8)
        try "1000\n".write(toFile: "\(directory)/serial", atomically: true, encoding: .utf8)

        func run(_ arguments: [String]) async throws {
            let result = try await runProgram(URL(fileURLWithPath: openssl), arguments, timeout: 60)
            guard result.status == 0 else {
                throw TestSetupError("openssl \(arguments.joined(separator: " ")) failed (\(result.status)): \(result.stderr)")
            }
        }
        let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc"]

        func makeCA(certificate: String, name: String) async throws {
            try await run(["req", "-config", config, "-x509"] + newKey +
                          ["-keyout", keyPath(certificate), "-out", certificate, "-days", "3650",
                           "-subj", "/CN=\(name)", "-extensions", "ca_ext"])
        }
        func request(for certificate: String, commonName: String) async throws -> String {
            let request = String(certificate.dropLast(".crt".count)) + ".csr"
            try await run(["req", "-config", config, "-new"] + newKey +
                          ["-keyout", keyPath(certificate), "-out", request, "-subj", "/CN=\(commonName)"])
            return request
        }
        var serial = 1
        func sign(_ certificate: String, commonName: String, by ca: String, extensions: String) async throws {
            let request = try await request(for: certificate, commonName: commonName)
            serial += 1
            try await run(["x509", "-req", "-in", request, "-CA", ca, "-CAkey", keyPath(ca), "-set_serial", "\(serial)",
                           "-days", "3650", "-sha256", "-extfile", config, "-extensions", extensions, "-out", certificate])
        }

        try await makeCA(certificate: material.caFile, name: "ImageQueue Test CA")
        try await makeCA(certificate: material.unknownCAFile, name: "Unknown Test CA")
        try await sign(material.serverCertificate, commonName: "localhost", by: material.caFile, extensions: "server_ext")
        try await sign(material.otherHostServerCertificate, commonName: "other.example", by: material.caFile,
                       extensions: "other_host_ext")
        try await sign(material.clientCertificate, commonName: "imagequeue-test-client", by: material.caFile,
                       extensions: "client_ext")
        try await sign(material.untrustedClientCertificate, commonName: "untrusted-test-client", by: material.unknownCAFile,
                       extensions: "client_ext")
        let expiredRequest = try await request(for: material.expiredServerCertificate, commonName: "localhost")
        try await run(["ca", "-config", config, "-batch", "-notext", "-cert", material.caFile, "-keyfile", keyPath(material.caFile),
                       "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-extensions", "server_ext",
                       "-in", expiredRequest, "-out", material.expiredServerCertificate])
        for key in [material.serverKey, material.clientKey, material.expiredServerKey, material.otherHostServerKey,
                    material.untrustedClientKey] where !FileManager.default.fileExists(atPath: key) {
            throw TestSetupError("openssl wrote no key \(key)")
        }
        return material
    }

    /// `x.crt` → `x.key`.
    private static func keyPath(_ certificate: String) -> String {
        String(certificate.dropLast(".crt".count)) + ".key"
    }

    /// One config for every command: the request defaults, the extension sets, and the
    /// `openssl ca` database.
    private static func configuration(directory: String) -> String {
        let leaf = """
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature
            subjectKeyIdentifier = hash
            authorityKeyIdentifier = keyid
            """
        return """
            [ req ]
            distinguished_name = dn
            prompt = no
            [ dn ]
            CN = unused
            [ ca_ext ]
            basicConstraints = critical, CA:TRUE
            keyUsage = critical, keyCertSign, cRLSign
            subjectKeyIdentifier = hash
            [ server_ext ]
            \(leaf)
            extendedKeyUsage = serverAuth
            subjectAltName = DNS:localhost, IP:127.0.0.1
            [ other_host_ext ]
            \(leaf)
            extendedKeyUsage = serverAuth
            subjectAltName = DNS:other.example
            [ client_ext ]
            \(leaf)
            extendedKeyUsage = clientAuth
            [ ca ]
            default_ca = test_ca
            [ test_ca ]
            database = \(directory)/index.txt
            new_certs_dir = \(directory)
            serial = \(directory)/serial
            default_md = sha256
            policy = any_name
            unique_subject = no
            copy_extensions = none
            [ any_name ]
            commonName = supplied

            """
    }

    static func opensslPath() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") + ["/usr/bin", "/usr/local/bin"] {
            let candidate = "\(directory)/openssl"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestSetupError("openssl is not installed (apt-get install openssl)")
    }

    /// The material's folders, removed when the test process exits.
    private static let folders: Mutex<Set<String>> = {
        atexit {
            for folder in TLSMaterial.folders.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: folder) }
        }
        return Mutex([])
    }()
}

extension RedisServer {
    /// A redis-server speaking TLS only (`--port 0 --tls-port P`), with the given server certificate (default: material.serverCertificate/serverKey), `--tls-ca-cert-file material.caFile`, `--tls-auth-clients yes|no`.
    public static func launchTLS(material: TLSMaterial, certificate: String? = nil, key: String? = nil,
                                 authClients: Bool = false, extraArguments: [String] = []) async throws -> RedisServer {
        let tls = ["--tls-cert-file", certificate ?? material.serverCertificate, "--tls-key-file", key ?? material.serverKey,
                   "--tls-ca-cert-file", material.caFile, "--tls-auth-clients", authClients ? "yes" : "no"]
        return try await offPool { try RedisServer(extraArguments: extraArguments, tlsArguments: tls) }
    }

    /// `rediss://127.0.0.1:<port>` (for a server started with launchTLS).
    public var tlsURL: String { "rediss://127.0.0.1:\(port)" }
}
