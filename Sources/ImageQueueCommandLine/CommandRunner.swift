import ArgumentParser
import DedicatedThreads
import ImageQueue
import Logging
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// A failure with its own exit status and message.
public struct CommandFailure: Error {
    public let status: Int32
    public let message: String

    public init(status: Int32, message: String) {
        self.status = status
        self.message = message
    }
}

/// Runs a root command and maps every failure to an exit code: 2 for usage and
/// validation errors, for every `ConfigurationError` and for Redis settings to fix (URL, credentials, a Cluster node behind a
/// single-node URL), 3 when rate limited, 1 for anything else; one line on stderr.
public enum CommandRunner {
    /// What every executable does first: ignore SIGPIPE, so a peer closing a Redis or HTTP
    /// connection fails that call instead of killing the process.
    public static func prepareProcess() {
        BrokenPipes.ignore()
    }

    public static func run<Root: ParsableCommand>(_ root: Root.Type, arguments: [String]) async -> Never {
        let status: Int32
        do {
            var command = try Root.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            status = 0
        } catch let exit as ExitCode {
            status = exit.rawValue
        } catch let error as ImageQueueError {
            Output.error(error.message)
            status = error.isValidation ? 2 : (error.code == .rateLimited ? 3 : 1)
        } catch let error as RedisError {
            Output.error(error.description)
            // A URL, credentials, TLS or a server of the wrong kind is a setting to fix: exit 2.
            status = error.isSetupError ? 2 : 1
        } catch let error as ConfigurationError {
            Output.error(error.description)
            status = 2
        } catch let error as CommandFailure {
            Output.error(error.message)
            status = error.status
        } catch {
            let code = Root.exitCode(for: error)
            if code == .success { Root.exit(withError: error) }  // --help, --version
            let message = Root.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            if code == .validationFailure {
                Output.error(message + " (see '\(Output.programName) --help')")
                status = 2
            } else {
                Output.error(message)
                status = 1
            }
        }
        Output.flush()
        Glibc.exit(status)
    }

    /// Logs go to stderr at `IMAGEQUEUE_LOG_LEVEL`, else at `fallback`.
    public static func bootstrapLogging(fallback: Logger.Level) {
        let level = Settings.process["IMAGEQUEUE_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? fallback
        LoggingSystem.bootstrap { label in StderrLogHandler(label: label, level: level) }
    }
}
