/// A setting that cannot be used: the one error type for every bad setting, whichever part
/// finds it (the command line reading the environment, flags and config file, or a library
/// finding a typed value unusable). The message names the setting and never shows its value,
/// so a secret is never printed; `imagequeue` exits 2 for it.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable {
    /// The environment variable or flag at fault.
    public let setting: String
    /// What is wrong with it and how to fix it.
    public let reason: String

    /// Creates an error for a setting.
    public init(setting: String, reason: String) {
        self.setting = setting
        self.reason = reason
    }

    /// One line: the setting, then the reason (the reason alone when it already names the
    /// setting, as in "the Bot API refused TELEGRAM_BOT_TOKEN").
    public var description: String { reason.contains(setting) ? reason : "\(setting) \(reason)" }
}
