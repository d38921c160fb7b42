/// Where a job is in its life.
public enum JobStatus: String, Sendable, Codable, CaseIterable {
    /// Waiting in its model's queue.
    case queued
    /// A worker is improving the prompt.
    case enhancing
    /// A worker is generating the image.
    case generating
    /// A transient failure; the worker retries after a delay.
    case retrying
    /// Done; the result is stored.
    case completed
    /// Dead-lettered with a reason (in the model's dead list).
    case failed
    /// Cancelled while queued.
    case cancelled

    /// Whether the job will change no more.
    public var isTerminal: Bool { self == .completed || self == .failed || self == .cancelled }
}
