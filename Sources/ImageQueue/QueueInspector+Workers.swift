extension QueueInspector {
    /// The workers registered now (their entries expire a few seconds after they stop),
    /// most recently seen first: `WorkerRegistry.list`.
    /// - Throws: `ImageQueueError` `.redis`.
    public func workers() async throws(ImageQueueError) -> [WorkerInfo] {
        try await WorkerRegistry(redis: redis, keys: configuration.keys).list()
    }
}
