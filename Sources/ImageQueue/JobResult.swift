/// Where a finished job's image is, as stored by the worker's result store.
public struct JobResult: Codable, Sendable, Equatable {
    /// `image/png` or `image/jpeg`.
    public var contentType: String
    /// Size of the image in bytes.
    public var bytes: Int
    /// `directory` or `redis`.
    public var store: String
    /// The file, for the directory store.
    public var path: String?
    /// The Redis key holding the bytes, for the redis store.
    public var key: String?
    /// True when the image came from the offline placeholder backend.
    public var placeholder: Bool?
    /// For a job that made several images (n > 1): every image, in order, the first being
    /// the one the fields above describe; nil for a single image.
    public var images: [JobResult]?

    /// Every image of the job: `images`, or this one alone.
    public var allImages: [JobResult] { images ?? [self] }

    /// Creates a result reference.
    public init(contentType: String, bytes: Int, store: String, path: String? = nil, key: String? = nil, placeholder: Bool? = nil) {
        self.contentType = contentType
        self.bytes = bytes
        self.store = store
        self.path = path
        self.key = key
        self.placeholder = placeholder
    }

    enum CodingKeys: String, CodingKey {
        case contentType = "content_type", bytes, store, path, key, placeholder, images
    }
}

/// The reason a job failed (or last failed), as stored on it and sent in events.
public struct JobError: Codable, Sendable, Equatable {
    /// A stable code, e.g. `lease_expired`, `malformed_job`, `backend_rejected`.
    public var code: String
    /// A message fit to show the user.
    public var message: String

    /// Creates an error record.
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
}
