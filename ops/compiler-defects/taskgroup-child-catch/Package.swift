// swift-tools-version: 6.1
// A minimal reproducer of the release-build defect behind the Redis Cluster crash
// (docs/CLUSTER.md, "The release-build crash"). Not part of ImageQueue's package.
import PackageDescription

let package = Package(
    name: "taskgroup-child-catch",
    targets: [.executableTarget(name: "taskgroup-child-catch")]
)
