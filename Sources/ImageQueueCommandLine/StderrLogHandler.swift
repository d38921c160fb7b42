import Logging

/// Standard error logging (swift-log's `StreamLogHandler`) that formats its metadata only
/// when a message is written: a worker adds job metadata to a logger for every job, and the
/// stream handler would format it at each change, even at a level that writes nothing.
public struct StderrLogHandler: LogHandler {
    private var stream: StreamLogHandler
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }
    public var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue }
    }

    public init(label: String, level: Logger.Level) {
        stream = StreamLogHandler.standardError(label: label)
        stream.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var stream = stream
        if !metadata.isEmpty { stream.metadata = metadata }
        stream.log(event: event)
    }
}
