// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "ImageQueue",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ImageQueue", targets: ["ImageQueue"]),
        .library(name: "RedisClient", targets: ["RedisClient"]),
        .executable(name: "imagequeue", targets: ["imagequeue"]),
        .executable(name: "imagequeue-bench", targets: ["ImageQueueBenchmarks"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C libraries from Debian: libhiredis-dev, libcurl4-openssl-dev.
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),

        // Swift wrapper over hiredis: the only code that touches hiredis pointers.
        .target(
            name: "RedisClient",
            dependencies: [
                "CHiredis",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // The producer library: models, keys, scripts, client, inspector.
        .target(
            name: "ImageQueue",
            dependencies: [
                "RedisClient",
                .product(name: "Logging", package: "swift-log"),
            ],
            plugins: ["EmbedLuaPlugin"]
        ),

        .executableTarget(
            name: "imagequeue",
            dependencies: [
                "ImageQueue",
                "RedisClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Throughput figures for docs/PERFORMANCE.md (not part of the test suite).
        .executableTarget(
            name: "ImageQueueBenchmarks",
            dependencies: ["ImageQueue", "RedisClient"]
        ),

        // Build-time embedding of lua/*.lua into the binary.
        .executableTarget(name: "LuaEmbedder"),
        .plugin(
            name: "EmbedLuaPlugin",
            capability: .buildTool(),
            dependencies: ["LuaEmbedder"],
            path: "Sources/EmbedLuaPlugin"
        ),

        // Real redis-server processes and helpers shared by the test targets.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(
            name: "RedisClientTests",
            dependencies: ["RedisClient", "TestSupport"]
        ),
        .testTarget(
            name: "ImageQueueTests",
            dependencies: ["ImageQueue", "RedisClient", "TestSupport"]
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["TestSupport"]
        ),
    ]
)
