import RedisClient
import FoundationEssentials

extension QueueInspector {
    /// A completed job's image `index` (0-based, in the order of `JobResult.allImages`; a job
    /// makes `n` images, 1 by default), from whichever store the worker used: the Redis blob,
    /// or the file at the result's path (which must be readable from this host).
    /// - Throws: `ImageQueueError` `.notFound` (no such job, not completed, no image `index`,
    ///   or the image expired), `.redis`.
    public func result(_ id: String, index: Int = 0) async throws(ImageQueueError) -> (bytes: [UInt8], contentType: String) {
        let info = try await status(id)
        guard info.status == .completed, let result = info.result else {
            throw ImageQueueError(.notFound, "job \(id) has no result (it is \(info.status.rawValue))", jobID: id)
        }
        let images = result.allImages
        guard images.indices.contains(index) else {
            let range = images.count == 1 ? "only index 0" : "indexes 0 to \(images.count - 1)"
            throw ImageQueueError(.notFound, "job \(id) made \(images.count) image\(images.count == 1 ? "" : "s"): there is no image \(index) (\(range))",
                                  jobID: id)
        }
        let image = images[index]
        let which = index == 0 ? "image" : "image \(index)"
        switch image.store {
        case "redis":
            let jobID = try JobID(id)
            guard let bytes = try await ResultBlobs(redis: redis, keys: configuration.keys).read(jobID, index: index, key: image.key) else {
                throw ImageQueueError(.notFound, "the \(which) of job \(id) has expired", jobID: id)
            }
            return (bytes, image.contentType)
        default:
            guard let path = image.path, let data = FileManager.default.contents(atPath: path) else {
                throw ImageQueueError(.notFound, "the \(which) file of job \(id) is not readable here", jobID: id)
            }
            return (Array(data), image.contentType)
        }
    }

    /// A running job's latest preview (PNG or JPEG), nil when there is none: its backend
    /// sends none, it is not generating, or the preview expired.
    /// - Throws: `ImageQueueError` `.invalidJobID`, `.redis`.
    public func preview(_ id: String) async throws(ImageQueueError) -> (bytes: [UInt8], contentType: String)? {
        let jobID = try JobID(id)
        let reply: RESPValue
        do {
            reply = try await redis.send("GET", configuration.keys.preview(jobID))
        } catch {
            throw ImageQueueError.redis(error, operation: "read the preview", jobID: id)
        }
        guard let bytes = reply.bytes else { return nil }
        let type: String
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            type = "image/png"
        } else if bytes.starts(with: [0xFF, 0xD8, 0xFF]) {
            type = "image/jpeg"
        } else {
            return nil
        }
        return (bytes, type)
    }
}
