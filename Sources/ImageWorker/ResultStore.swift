import FoundationEssentials
import ImageQueue
import Logging
import RedisClient
#if canImport(Glibc)
import Glibc
#endif

/// Keeps finished images where producers can fetch them.
public protocol ResultStore: Sendable {
    /// Stores image `index` (0-based) of a job and returns its reference.
    /// - Throws: `GenerationError` `.storageFailed`.
    func store(_ image: GeneratedImage, index: Int, job: ClaimedJob) async throws(GenerationError) -> JobResult

    /// Removes results older than the store's TTL (the Redis store's expire by themselves).
    func removeExpired() async
}

extension ResultStore {
    /// Stores every image of a job, in order, and returns the reference recorded on the job:
    /// the first image's, which lists them all in `images` when there are several (for one
    /// image, exactly that image's reference).
    public func store(_ images: [GeneratedImage], job: ClaimedJob) async throws(GenerationError) -> JobResult {
        var results: [JobResult] = []
        for (index, image) in images.enumerated() {
            results.append(try await store(image, index: index, job: job))
        }
        guard var first = results.first else { throw GenerationError(.invalidImage, "the backend made no image") }
        if results.count > 1 { first.images = results }
        return first
    }
}

/// `<directory>/<model>/<job id>.png|jpg` (image k > 0 of a job that made several:
/// `<job id>+<k>.png|jpg`; no job id holds a `+`), written to a temporary name and renamed into
/// place, so a reader never sees half a file.
public struct DirectoryResultStore: ResultStore {
    /// The root folder.
    public let directory: String
    /// Files older than this are removed by `removeExpired`.
    public let ttl: Duration

    /// Creates the store, making the folder if needed.
    /// - Throws: `ConfigurationError` naming `IMAGEQUEUE_OUTPUT_DIR` when it cannot be used.
    public init(directory: String, ttl: Duration) throws(ConfigurationError) {
        let absolute = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory
        do {
            try FileManager.default.createDirectory(atPath: absolute, withIntermediateDirectories: true)
        } catch {
            throw ConfigurationError(setting: "IMAGEQUEUE_OUTPUT_DIR", reason: "cannot create \(absolute)")
        }
        guard access(absolute, W_OK) == 0 else {
            throw ConfigurationError(setting: "IMAGEQUEUE_OUTPUT_DIR", reason: "\(absolute) is not writable")
        }
        self.directory = absolute
        self.ttl = ttl
    }

    public func store(_ image: GeneratedImage, index: Int, job: ClaimedJob) async throws(GenerationError) -> JobResult {
        let folder = directory + "/" + job.model
        let path = "\(folder)/\(job.id)\(index == 0 ? "" : "+\(index)").\(image.fileExtension)"
        let temporary = "\(folder)/.\(job.id).\(UInt32.random(in: 0...UInt32.max)).tmp"
        var failure = Self.write(image.bytes, to: temporary)
        if failure == ENOENT {
            // The model's folder is made on its first image (or again, if someone removed it).
            try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            failure = Self.write(image.bytes, to: temporary)
        }
        if failure == 0, rename(temporary, path) != 0 { failure = errno }
        if failure != 0 {
            unlink(temporary)
            throw GenerationError(.storageFailed, "cannot write \(path): \(String(cString: strerror(failure)))")
        }
        return JobResult(contentType: image.contentType, bytes: image.bytes.count, store: "directory", path: path,
                         placeholder: image.placeholder ? true : nil)
    }

    /// Writes a new file; 0 or the errno of the failure.
    private static func write(_ bytes: [UInt8], to path: String) -> Int32 {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return errno }
        var failure: Int32 = 0
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += written
            }
        }
        if close(descriptor) != 0, failure == 0 { failure = errno }
        return failure
    }

    public func removeExpired() async {
        let cutoff = Date(timeIntervalSinceNow: -Double(ttl.wholeMilliseconds) / 1000)
        guard let models = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for model in models {
            let folder = directory + "/" + model
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: folder) else { continue }
            for file in files {
                let path = folder + "/" + file
                if let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
                   modified < cutoff {
                    unlink(path)
                }
            }
        }
    }
}

/// The image bytes in Redis under the job's hash tag, expiring after `ttl`.
///
/// While Redis is at maxmemory it refuses the bytes (`OOM`): the store keeps the image and
/// tries again with backoff (the claim loop keeps the job's lease alive meanwhile) until it
/// fits or the worker shuts down, instead of failing the job and burning its attempts.
public struct RedisResultStore: ResultStore {
    let blobs: ResultBlobs
    let ttl: Duration
    let logger: Logger

    /// Creates the store on a connection (the keys are `ResultBlobs`', beside their reader).
    public init(redis: any RedisClientProtocol, keys: QueueKeys, ttl: Duration, logger: Logger = Logger(label: "imagequeue.worker")) {
        blobs = ResultBlobs(redis: redis, keys: keys)
        self.ttl = ttl
        self.logger = logger
    }

    public func store(_ image: GeneratedImage, index: Int, job: ClaimedJob) async throws(GenerationError) -> JobResult {
        guard let id = try? JobID(job.id) else { throw GenerationError(.storageFailed, "bad job id") }
        var refusals = 0
        while true {
            do {
                let key = try await blobs.write(image.bytes, for: id, index: index, ttl: ttl)
                return JobResult(contentType: image.contentType, bytes: image.bytes.count, store: "redis", key: key,
                                 placeholder: image.placeholder ? true : nil)
            } catch where error.code == .redisFull && !Task.isCancelled {
                refusals += 1
                if refusals == 1 {
                    logger.warning("\(RedisRetry.problem(error)); keeping the image and trying again",
                                   metadata: ["job.id": "\(job.id)", "bytes": "\(image.bytes.count)"])
                }
                // Up to 2 s apart: memory frees as finished jobs and results expire.
                try? await Task.sleep(for: .milliseconds(Int64.random(in: 1000...2000)))
            } catch {
                throw GenerationError(.storageFailed, "cannot store the image in Redis: \(error.redisError.map { "\($0)" } ?? error.message)")
            }
        }
    }

    public func removeExpired() async {}
}
