import Foundation
import Testing
import TestSupport

/// The dashboard's live progress, run in node against a minimal DOM and a fake server
/// (Tests/Dashboard/progress_harness.js): a running job's `<progress>` bar follows the
/// latest event's `progress` (whole percent, rounded down), a `"preview": true` event
/// loads `v1/jobs/{id}/preview?rev=<rev>` once into the row (again only for a newer preview,
/// not at every render or snapshot), and the bar and preview survive a snapshot.
@Suite struct DashboardProgressTests {
    private static func runHarness(_ arguments: [String]) async throws -> (SpawnedProcess, SpawnedProcess.Termination) {
        let node = try #require(["/usr/bin/node", "/usr/bin/nodejs", "/usr/local/bin/node"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }, "no node: ops/install-deps.sh --tests installs Debian's nodejs")
        let root = TestEnvironment.packageRoot
        let harness = root.appendingPathComponent("Tests/Dashboard/progress_harness.js").path
        let script = root.appendingPathComponent("Sources/ImageQueueServer/Dashboard/app.js").path
        let process = try SpawnedProcess(node, [harness, script] + arguments, environment: ProcessInfo.processInfo.environment)
        return (process, try await process.waitForExit())
    }

    @Test func aRunningJobShowsItsProgressAndItsLatestPreview() async throws {
        let (process, ended) = try await Self.runHarness([])
        #expect(ended == .exited(0), "\(process.output)")
        #expect(process.output.contains("dashboard progress OK"), "\(process.output)")
    }

    @Test func thePauseButtonPausesTheModelWithTheTokenAndTheCardShowsItPaused() async throws {
        let (process, ended) = try await Self.runHarness(["pause"])
        #expect(ended == .exited(0), "\(process.output)")
        #expect(process.output.contains("dashboard pause OK"), "\(process.output)")
    }

    @Test func withProtectedReadsThePreviewIsReadWithTheToken() async throws {
        let (process, ended) = try await Self.runHarness(["token"])
        #expect(ended == .exited(0), "\(process.output)")
        #expect(process.output.contains("dashboard progress OK (protected reads)"), "\(process.output)")
    }
}
