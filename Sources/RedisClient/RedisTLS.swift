import COpenSSL
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a `rediss://` connection checks the server and proves who it is. The server's
/// certificate and host name are always verified; nothing here turns that off.
public struct RedisTLS: Sendable, Hashable {
    /// A PEM file of the CA certificates to trust; nil trusts the system's store.
    public var caFile: String?
    /// A PEM certificate chain presented to servers that ask for one (mutual TLS), with `keyFile`.
    public var certificateFile: String?
    /// The PEM private key of `certificateFile` (unencrypted).
    public var keyFile: String?
    /// The name sent as SNI and checked against the server's certificate; nil uses the host
    /// the connection goes to (an IP address is checked as one).
    public var serverName: String?

    /// TLS with the system's trust store and no client certificate.
    public init(caFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.serverName = serverName
    }
}

/// An OpenSSL client context for one `RedisTLS`: the trust store and the client certificate,
/// loaded once and shared by every connection with the same settings (OpenSSL makes
/// sessions from a finished context on any thread).
final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer

    private init(_ tls: RedisTLS) throws(RedisError) {
        guard let made = SSL_CTX_new(TLS_client_method()) else { throw Self.failure("cannot create a TLS context") }
        context = made
        _ = iq_ssl_ctx_set_min_tls12(made)
        iq_ssl_ctx_set_modes(made)
        SSL_CTX_set_verify(made, SSL_VERIFY_PEER, nil)
        // An encrypted key fails to load instead of asking for its passphrase on the terminal.
        SSL_CTX_set_default_passwd_cb(made) { _, _, _, _ in 0 }
        ERR_clear_error()
        if let caFile = tls.caFile {
            guard SSL_CTX_load_verify_locations(made, caFile, nil) == 1 else {
                throw Self.failure("cannot read the TLS CA file \(caFile)")
            }
        } else if SSL_CTX_set_default_verify_paths(made) != 1 {
            throw Self.failure("cannot load the system's trusted CA certificates")
        }
        switch (tls.certificateFile, tls.keyFile) {
        case (nil, nil):
            // Notes that the server asked for a certificate (we have none to give): with TLS
            // 1.3 its refusal comes after our handshake ends, often as a bare reset.
            SSL_CTX_set_client_cert_cb(made) { ssl, _, _ in
                SSL_get_ex_data(ssl, 0)?.assumingMemoryBound(to: Bool.self).pointee = true
                return 0
            }
        case (let certificate?, let key?):
            guard SSL_CTX_use_certificate_chain_file(made, certificate) == 1 else {
                throw Self.failure("cannot read the TLS client certificate \(certificate)")
            }
            guard SSL_CTX_use_PrivateKey_file(made, key, SSL_FILETYPE_PEM) == 1 else {
                if iq_err_is_key_mismatch(ERR_peek_last_error()) != 0 {
                    ERR_clear_error()
                    throw RedisError(.tls, "the TLS client key \(key) is not the key of the certificate \(certificate)")
                }
                throw Self.failure("cannot read the TLS client key \(key) (a PEM key without a passphrase)")
            }
            guard SSL_CTX_check_private_key(made) == 1 else {
                throw RedisError(.tls, "the TLS client key \(key) is not the key of the certificate \(certificate)")
            }
        case (let certificate?, nil): throw RedisError(.tls, "the TLS client certificate \(certificate) needs its key file too")
        case (nil, let key?): throw RedisError(.tls, "the TLS client key \(key) needs its certificate file too")
        }
    }

    deinit { SSL_CTX_free(context) }

    private static let made = Mutex<[RedisTLS: TLSContext]>([:])

    /// The context for `tls`, made on first use. A failure is not kept: a file fixed since
    /// is read at the next connect.
    static func shared(_ tls: RedisTLS) throws(RedisError) -> TLSContext {
        if let known = made.withLock({ $0[tls] }) { return known }
        let fresh = try TLSContext(tls)
        return made.withLock { contexts in
            if let known = contexts[tls] { return known }
            contexts[tls] = fresh
            return fresh
        }
    }

    /// `what`, with OpenSSL's reason for it; the queue is cleared.
    static func failure(_ what: String) -> RedisError {
        let code = ERR_peek_last_error()
        ERR_clear_error()
        guard code != 0, let reason = ERR_reason_error_string(code) else { return RedisError(.tls, what) }
        return RedisError(.tls, "\(what): \(String(cString: reason))")
    }
}

/// One TLS session over a connected, non-blocking socket: the only code that touches an
/// `SSL` pointer. Used by one thread at a time, as the socket it belongs to.
final class TLSSession {
    /// What a read or a write did.
    enum Progress {
        /// This many bytes moved.
        case moved(Int)
        /// Nothing now: wait until the socket is readable (`wantsWrite` false) or writable.
        case wouldBlock(wantsWrite: Bool)
        /// The server closed the session.
        case closed
    }

    private let ssl: OpaquePointer
    private let expectedName: String
    private let presentsCertificate: Bool
    /// Set by the context's client-certificate callback (the session's app data, index 0).
    private let certificateRequested = UnsafeMutablePointer<Bool>.allocate(capacity: 1)
    /// Set once the server answered a command: from then on an end of the session is a lost
    /// connection, not a refused certificate (a server with `tls-auth-clients optional` asks
    /// for one and takes none).
    var established = false

    /// Starts a session on `fd` (still the caller's to close).
    /// - Parameter name: the server name to send (SNI) and to find in the certificate.
    init(context: TLSContext, fd: Int32, name: String, presentsCertificate: Bool) throws(RedisError) {
        certificateRequested.initialize(to: false)
        guard let made = SSL_new(context.context) else {
            certificateRequested.deallocate()
            throw TLSContext.failure("cannot create a TLS session")
        }
        ssl = made
        expectedName = name
        self.presentsCertificate = presentsCertificate
        SSL_set_ex_data(made, 0, certificateRequested)
        guard SSL_set_fd(made, fd) == 1 else { throw TLSContext.failure("cannot attach TLS to the socket") }
        if Self.isIPAddress(name) {
            // No SNI for an address (RFC 6066); the certificate must list it as an IP address.
            guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(made), name) == 1 else {
                throw TLSContext.failure("cannot check the server's address \(name)")
            }
        } else {
            guard iq_ssl_set_sni(made, name) == 1, SSL_set1_host(made, name) == 1 else {
                throw TLSContext.failure("cannot check the server's name \(name)")
            }
        }
    }

    deinit {
        // A close_notify if the socket takes it now; the peer copes without one.
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
        SSL_free(ssl)
        certificateRequested.deallocate()
    }

    /// Runs the handshake, waiting with `wait` (events, deadline) whenever OpenSSL needs the socket.
    /// - Throws: `.tls` saying what failed (an untrusted CA, another host's certificate, an
    ///   expired one, a client certificate required, a port without TLS), `.timeout`.
    func handshake(wait: (Int16) throws(RedisError) -> Bool) throws(RedisError) {
        while true {
            ERR_clear_error()
            let result = SSL_connect(ssl)
            if result == 1 { return }
            switch SSL_get_error(ssl, result) {
            case SSL_ERROR_WANT_READ:
                // A plaintext Redis takes the ClientHello for the start of a command and waits.
                guard try wait(Int16(POLLIN)) else {
                    throw RedisError(.timeout, "no answer to the TLS handshake in time (a plaintext port? its URL is redis://)")
                }
            case SSL_ERROR_WANT_WRITE:
                guard try wait(Int16(POLLOUT)) else { throw RedisError(.timeout, "timed out in the TLS handshake") }
            default:
                throw failure(result, during: "the TLS handshake")
            }
        }
    }

    /// Reads what the session has decrypted, up to `buffer.count` bytes.
    /// - Throws: `.connectionLost`, or `.tls` for an alert (a client certificate refused).
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(RedisError) -> Progress {
        ERR_clear_error()
        let result = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        if result > 0 { return .moved(Int(result)) }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ: return .wouldBlock(wantsWrite: false)
        case SSL_ERROR_WANT_WRITE: return .wouldBlock(wantsWrite: true)
        case SSL_ERROR_ZERO_RETURN where established || !certificateRequested.pointee || presentsCertificate: return .closed
        default: throw failure(result, during: nil)
        }
    }

    /// Encrypts and sends part of `bytes`.
    /// - Throws: `.connectionLost`.
    func write(_ bytes: UnsafeRawBufferPointer) throws(RedisError) -> Progress {
        ERR_clear_error()
        let result = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, Int(Int32.max))))
        if result > 0 { return .moved(Int(result)) }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ: return .wouldBlock(wantsWrite: false)
        case SSL_ERROR_WANT_WRITE: return .wouldBlock(wantsWrite: true)
        case SSL_ERROR_ZERO_RETURN: return .closed
        default:
            let broken = failure(result, during: nil)
            // A server that refused our certificate sent its alert, then reset the
            // connection before this write: the alert, unread, says why.
            if !established, broken.kind != .tls {
                var scratch = [UInt8](repeating: 0, count: 512)
                ERR_clear_error()
                let read = scratch.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
                if read <= 0, SSL_get_error(ssl, read) == SSL_ERROR_SSL {
                    let alert = failure(read, during: nil)
                    if alert.kind == .tls { throw alert }
                }
            }
            throw broken
        }
    }

    /// One line on why an OpenSSL call failed. OpenSSL's texts name reasons and files, never
    /// key material.
    private func failure(_ result: Int32, during phase: String?) -> RedisError {
        let kind = SSL_get_error(ssl, result)
        let code = ERR_peek_last_error()
        defer { ERR_clear_error() }
        let verified = SSL_get_verify_result(ssl)
        if phase != nil, verified != X509_V_OK {
            return RedisError(.tls, certificateProblem(verified))
        }
        let reason = iq_err_is_ssl_library(code) != 0 ? iq_err_reason(code) : 0
        // The server asked for a certificate we did not have, then ended the session: that
        // is its refusal, whether the alert arrived or only a reset or an end of stream.
        if !established, certificateRequested.pointee, !presentsCertificate,
           kind == SSL_ERROR_SYSCALL || kind == SSL_ERROR_ZERO_RETURN || reason == SSL_R_UNEXPECTED_EOF_WHILE_READING {
            return RedisError(.tls, "the server requires a client certificate (mutual TLS): give a certificate and its key")
        }
        switch reason {
        case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED, SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE where !presentsCertificate:
            return RedisError(.tls, "the server requires a client certificate (mutual TLS): give a certificate and its key")
        case SSL_R_TLSV1_ALERT_UNKNOWN_CA, SSL_R_SSLV3_ALERT_BAD_CERTIFICATE, SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
            return RedisError(.tls, "the server refused our client certificate (\(Self.reasonText(code)))")
        case SSL_R_WRONG_VERSION_NUMBER, SSL_R_PACKET_LENGTH_TOO_LONG, SSL_R_HTTP_REQUEST:
            return RedisError(.tls, "the server does not speak TLS on this port (a plaintext Redis? its URL is redis://)")
        case SSL_R_UNEXPECTED_EOF_WHILE_READING:
            if let phase {
                return RedisError(.connectionFailed, "the server closed the connection during \(phase)")
            }
            return RedisError(.connectionLost, "connection to Redis lost: Server closed the connection")
        default: break
        }
        if kind == SSL_ERROR_SYSCALL || code == 0 {
            let why = errno == 0 ? "Server closed the connection" : String(cString: strerror(errno))
            if let phase { return RedisError(.connectionFailed, "connection closed during \(phase): \(why)") }
            return RedisError(.connectionLost, "connection to Redis lost: \(why)")
        }
        return RedisError(.tls, "TLS failed\(phase.map { " in \($0)" } ?? ""): \(Self.reasonText(code))")
    }

    /// What is wrong with the server's certificate, from the verification result.
    private func certificateProblem(_ result: Int) -> String {
        switch Int32(result) {
        case X509_V_ERR_CERT_HAS_EXPIRED:
            return "the server's TLS certificate has expired"
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return "the server's TLS certificate is not valid yet (check the clocks)"
        case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
            return "the server's TLS certificate is not for \(expectedName) (set the TLS server name to a name it lists)"
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
             X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
             X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            return "the server's TLS certificate is signed by an unknown CA (give the CA's certificate as the TLS CA file)"
        default:
            return "the server's TLS certificate was refused: \(String(cString: X509_verify_cert_error_string(result)))"
        }
    }

    private static func reasonText(_ code: UInt) -> String {
        guard code != 0, let reason = ERR_reason_error_string(code) else { return "no reason given" }
        return String(cString: reason)
    }

    private static func isIPAddress(_ name: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, name, &v4) == 1 || inet_pton(AF_INET6, name, &v6) == 1
    }
}
