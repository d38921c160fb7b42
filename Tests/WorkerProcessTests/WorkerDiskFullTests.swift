import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A worker whose output directory is on a full disk.
@Suite("worker: full disk")
struct WorkerDiskFullTests {
    /// Whether this machine lets a process mount a tmpfs in a mount namespace of its own.
    static let canMountPrivateTmpfs: Bool = {
        guard let pid = try? spawnChild("/usr/bin/unshare", ["-rm", "sh", "-c", "mount -t tmpfs -o size=16k tmpfs /tmp"]) else {
            return false
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status == 0
    }()

    @Test("a full disk under the output directory: the job is dead-lettered as storage_failed, the worker carries on",
          .enabled(if: canMountPrivateTmpfs, "this machine does not allow a private tmpfs mount (unshare -rm)"))
    func fullDisk() async throws {
        let cli = try QueueCLI()
        defer { cli.removeOutputDirectory() }
        let directory = try cli.outputDirectory()
        // The worker runs in a mount namespace of its own, its output directory a 64 KiB tmpfs;
        // a 512×512 placeholder PNG is about 800 KB.
        let script = #"mount -t tmpfs -o size=64k tmpfs "$0" && exec "$@""#
        let worker = try SpawnedProcess("/usr/bin/unshare", ["-rm", "sh", "-c", script, directory, cli.binary.path, "worker",
                                                             "--models", "flux", "--backend", "placeholder", "--lease-seconds", "3",
                                                             "--output-dir", directory, "--id", "\(cli.prefix)-w",
                                                             "--redis", cli.redisURL, "--prefix", cli.prefix],
                                        environment: QueueCLI.environment())
        let first = try await cli.enqueue("too big for the disk")
        let failed = try await cli.waitForStatus(first, "failed")
        let second = try await cli.enqueue("still too big")
        let alsoFailed = try await cli.waitForStatus(second, "failed")
        #expect(worker.isRunning, "\(worker.output)")
        worker.send(SIGTERM)
        let ended = try await worker.waitForExit()

        for job in [failed, alsoFailed] {
            #expect(job["status"]?.string == "failed", "\(job)\n\(worker.output)")
            #expect(job["error"]?["code"]?.string == "storage_failed", "\(job)")
            #expect(job["error"]?["message"]?.string == "The image was generated but could not be stored.")
        }
        #expect(ended == .exited(0), "\(worker.output)")
        let dead = try await cli.json(["dead", "list", "--model", "flux", "--json"])
        #expect(dead.array?.count == 2, "both wait in the dead list, to be retried once there is room: \(dead)")
    }
}
