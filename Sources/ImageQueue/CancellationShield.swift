/// Runs `body` to its end even when the calling task is cancelled, and returns its value.
///
/// For steps that must not stop half-way: a claim repeated after its answer was lost (else
/// the jobs it took stay held until their lease expires), a job's last step (complete, fail,
/// release). Swift has no cancellation shield for a child task (a child is cancelled with its
/// parent), so `body` runs in a task of its own; it stays owned all the same: the caller
/// awaits it at once, so it never outlives the caller's scope, and it inherits the caller's
/// priority and task-local values. This is the one unstructured task of the queue and worker
/// code; `body` bounds its own duration (a patience, a lease deadline).
public func withoutCancellation<T: Sendable>(_ body: sending @escaping @isolated(any) () async -> T) async -> T {
    await Task(operation: body).value
}
