import DedicatedThreads
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A webhook URL that may receive a job's final event: `http` or `https`, with a host, and
/// that host not in a refused range unless the operator allowed it.
///
/// Refused, unless the host as written in the URL is in the allow-list
/// (`QueueConfiguration.webhookAllowHosts`, `IMAGEQUEUE_WEBHOOK_ALLOW_HOSTS`):
/// - the names `localhost` (and `*.localhost`), `metadata`, `metadata.google.internal`;
/// - an address, written as a literal or resolved from the name (every address it resolves
///   to is checked), in 0.0.0.0/8, 10/8, 100.64/10, 127/8, 169.254/16 (link-local, cloud
///   metadata 169.254.169.254), 172.16/12, 192.0.0/24, 192.168/16, 198.18/15, 224/4 and
///   240/4 (multicast, reserved, broadcast), 168.63.129.16 (Azure's host endpoint); `::`,
///   `::1`, fc00::/7 (unique local, AWS's fd00:ec2::254), fe80::/10, fec0::/10, ff00::/8,
///   and IPv4 addresses embedded in IPv6 (`::ffff:a.b.c.d`, `::a.b.c.d`, `64:ff9b::/96`) by
///   the IPv4 rules;
/// - a name that does not resolve (checked again at each delivery, since DNS may change).
public struct WebhookTarget: Sendable, Equatable {
    /// The URL as given.
    public let url: String
    /// `http` or `https`.
    public let scheme: String
    /// The host, lowercased, IPv6 without brackets.
    public let host: String
    /// The port, when the URL names one.
    public let port: Int?
    /// The path (with a leading `/`, or empty).
    public let path: String

    /// The longest URL accepted.
    public static let maxLength = 2048

    /// Parses and checks `url`.
    /// - Parameters:
    ///   - resolve: false checks names and literal addresses only (no DNS lookup).
    ///   - acceptUnresolved: a name that does not resolve now passes (enqueue: DNS may be
    ///     down or the name not published yet; every delivery checks again, and retries).
    /// - Throws: `ImageQueueError` `.invalidWebhook`, saying why.
    public init(_ url: String, allowHosts: Set<String>, resolve: Bool = true, acceptUnresolved: Bool = false) throws(ImageQueueError) {
        try self.init(parsing: url)
        if allowHosts.contains(host) || allowHosts.contains(Self.withoutTrailingDot(host)) { return }
        try Self.checkHost(host, resolve: resolve, acceptUnresolved: acceptUnresolved)
    }

    /// Runs `body`, a check that may resolve names (getaddrinfo blocks), on a thread of its
    /// own: never on one of the cooperative pool's few threads.
    public static func offCooperativeThreads<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            do {
                try resolver.run { continuation.resume(returning: body()) }
            } catch {
                continuation.resume(returning: body())  // no thread could start: check here
            }
        }
    }

    private static let resolver = ThreadPool(name: "iq-resolve", limit: 4)

    /// `scheme://host[:port]/path`: no user information, query or fragment, for logs and status.
    public var redacted: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(scheme)://\(shownHost)\(port.map { ":\($0)" } ?? "")\(path)"
    }

    /// The check before a delivery: nil when `url` may be posted to now; else why not, and
    /// whether for good (a refused scheme, name or address) or for now (the name does not
    /// resolve at the moment: DNS may be down; retried like a failed POST).
    public static func deliveryRefusal(_ url: String, allowHosts: Set<String>) -> (reason: String, permanent: Bool)? {
        do {
            _ = try WebhookTarget(url, allowHosts: allowHosts)
            return nil
        } catch {
            let host = (try? WebhookTarget(parsing: url))?.host
            let unresolved = host.map { !addresses(of: $0, numericOnly: true).isSuccess
                && !addresses(of: $0, numericOnly: false).isSuccess } ?? false
            return (error.message, !unresolved)
        }
    }

    /// `url` as it may be logged or shown (`redacted`), without checking its host.
    public static func redacted(_ url: String) -> String {
        (try? WebhookTarget(parsing: url))?.redacted ?? "<unparseable URL>"
    }

    /// The entries of an allow-list setting: separated by commas or spaces, lowercased, IPv6
    /// brackets and a trailing dot removed.
    public static func allowList(_ text: String) -> Set<String> {
        var hosts: Set<String> = []
        for entry in text.split(whereSeparator: { $0 == "," || $0 == " " }) where !entry.isEmpty {
            var host = entry.lowercased()
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            hosts.insert(withoutTrailingDot(host))
        }
        return hosts
    }

    // MARK: - Parsing

    private init(parsing url: String) throws(ImageQueueError) {
        func refuse(_ why: String) -> ImageQueueError {
            ImageQueueError(.invalidWebhook, "webhook_url refused: \(why)")
        }
        guard !url.isEmpty, url.utf8.count <= Self.maxLength else {
            throw refuse("a URL of 1 to \(Self.maxLength) bytes is required")
        }
        guard url.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw refuse("the URL must be printable ASCII without spaces (percent-encode the rest)")
        }
        let lower = url.lowercased()
        let scheme: String
        if lower.hasPrefix("https://") { scheme = "https" } else if lower.hasPrefix("http://") { scheme = "http" } else {
            throw refuse("only http:// and https:// URLs receive webhooks")
        }
        let rest = url.dropFirst(scheme.count + 3)
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        let tail = rest[authorityEnd...]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var hostText: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw refuse("the IPv6 address has no closing ]") }
            hostText = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw refuse("unexpected text after the IPv6 address") }
                portText = after.dropFirst()
            }
            guard !hostText.isEmpty, hostText.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else {
                throw refuse("the IPv6 address is malformed (zone ids are not accepted)")
            }
        } else {
            if let colon = authority.firstIndex(of: ":") {
                hostText = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            } else {
                hostText = authority
            }
            guard hostText.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_" }) else {
                throw refuse("the host may hold only letters, digits, '-', '_' and '.'")
            }
        }
        guard !hostText.isEmpty else { throw refuse("the URL has no host") }
        var port: Int?
        if let portText {
            guard let number = Int(portText), (1...65535).contains(number), portText.allSatisfy(\.isNumber) else {
                throw refuse("the port must be a number from 1 to 65535")
            }
            port = number
        }
        hostText = Substring(hostText.lowercased())
        self.url = url
        self.scheme = scheme
        self.host = String(hostText)
        self.port = port
        let pathEnd = tail.firstIndex(where: { $0 == "?" || $0 == "#" }) ?? tail.endIndex
        self.path = String(tail[..<pathEnd])
    }

    private static func withoutTrailingDot(_ host: String) -> String {
        host.hasSuffix(".") ? String(host.dropLast()) : host
    }

    // MARK: - Checks

    private static let refusedNames: Set<String> = ["localhost", "metadata", "metadata.google.internal"]

    private static func checkHost(_ host: String, resolve: Bool, acceptUnresolved: Bool) throws(ImageQueueError) {
        let name = withoutTrailingDot(host)
        if refusedNames.contains(name) || name.hasSuffix(".localhost") {
            throw ImageQueueError(.invalidWebhook, "webhook_url refused: \(name) is a local or metadata host name")
        }
        let literal = addresses(of: host, numericOnly: true)
        let resolved: [Address]
        switch literal {
        case .success(let found):
            resolved = found
        case .failure:
            guard resolve else { return }
            switch addresses(of: host, numericOnly: false) {
            case .success(let found): resolved = found
            case .failure(let problem):
                if acceptUnresolved { return }
                throw ImageQueueError(.invalidWebhook, "webhook_url refused: the host \(host.prefix(100)) does not resolve (\(problem.text))")
            }
        }
        for address in resolved {
            if let range = refusedRange(address) {
                let via = literal.isSuccess ? "" : " (\(host.prefix(100)) resolves to it)"
                throw ImageQueueError(.invalidWebhook,
                                      "webhook_url refused: \(address.text)\(via) is in \(range); webhooks go to public addresses only, unless the operator allows the host")
            }
        }
    }

    /// An IPv4 (4 bytes) or IPv6 (16 bytes) address.
    struct Address: Sendable, Equatable {
        let bytes: [UInt8]

        var text: String {
            var buffer = [CChar](repeating: 0, count: 64)
            var copy = bytes
            let family = bytes.count == 4 ? AF_INET : AF_INET6
            guard inet_ntop(family, &copy, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
            return String(cString: buffer)
        }
    }

    struct ResolveError: Error { let text: String }

    /// The addresses getaddrinfo gives for `host`; `numericOnly`: only when it is an address
    /// literal (glibc also reads the inet_aton forms, `2130706433`, `0x7f.1`, as IPv4).
    static func addresses(of host: String, numericOnly: Bool) -> Result<[Address], ResolveError> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        if numericOnly { hints.ai_flags = AI_NUMERICHOST }
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0 else { return .failure(ResolveError(text: String(cString: gai_strerror(status)))) }
        defer { freeaddrinfo(list) }
        var found: [Address] = []
        var entry = list
        while let info = entry?.pointee {
            if info.ai_family == AF_INET, let raw = info.ai_addr {
                raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    var address = pointer.pointee.sin_addr
                    found.append(Address(bytes: withUnsafeBytes(of: &address) { Array($0) }))
                }
            } else if info.ai_family == AF_INET6, let raw = info.ai_addr {
                raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    var address = pointer.pointee.sin6_addr
                    found.append(Address(bytes: withUnsafeBytes(of: &address) { Array($0) }))
                }
            }
            entry = info.ai_next
        }
        return found.isEmpty ? .failure(ResolveError(text: "no address")) : .success(found)
    }

    /// The refused range holding `address`, named for the message, or nil for a public one.
    static func refusedRange(_ address: Address) -> String? {
        let b = address.bytes
        if b.count == 4 { return refusedIPv4(b) }
        guard b.count == 16 else { return "an unknown address family" }
        let v4Tail = Array(b[12..<16])
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF {
            return refusedIPv4(v4Tail).map { "\($0), mapped into IPv6" }
        }
        if b[0..<15].allSatisfy({ $0 == 0 }) { return b[15] == 1 ? "the loopback address ::1" : "the unspecified address ::" }
        if b[0..<12].allSatisfy({ $0 == 0 }) { return refusedIPv4(v4Tail).map { "\($0), embedded in IPv6" } }
        if b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && b[4..<12].allSatisfy({ $0 == 0 }) {
            return refusedIPv4(v4Tail).map { "\($0), behind NAT64" }
        }
        if b[0] & 0xFE == 0xFC { return "a unique local range (fc00::/7)" }
        if b[0] == 0xFE && b[1] & 0xC0 == 0x80 { return "the link-local range (fe80::/10)" }
        if b[0] == 0xFE && b[1] & 0xC0 == 0xC0 { return "the site-local range (fec0::/10)" }
        if b[0] == 0xFF { return "the multicast range (ff00::/8)" }
        return nil
    }

    private static func refusedIPv4(_ b: [UInt8]) -> String? {
        switch (b[0], b[1]) {
        case (0, _): return "the range 0.0.0.0/8 (this host)"
        case (10, _): return "a private range (10.0.0.0/8)"
        case (100, 64...127): return "the shared address range (100.64.0.0/10)"
        case (127, _): return "the loopback range (127.0.0.0/8)"
        case (169, 254): return "the link-local and metadata range (169.254.0.0/16)"
        case (172, 16...31): return "a private range (172.16.0.0/12)"
        case (192, 0) where b[2] == 0: return "the IETF protocol range (192.0.0.0/24)"
        case (192, 168): return "a private range (192.168.0.0/16)"
        case (198, 18...19): return "the benchmarking range (198.18.0.0/15)"
        case (224...239, _): return "the multicast range (224.0.0.0/4)"
        case (240...255, _): return "the reserved range (240.0.0.0/4)"
        case (168, 63) where b[2] == 129 && b[3] == 16: return "a cloud metadata address (168.63.129.16)"
        default: return nil
        }
    }
}

private extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
