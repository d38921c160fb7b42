// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "ImageQueue",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ImageQueue", targets: ["ImageQueue"]),
        .library(name: "RedisClient", targets: ["RedisClient"]),
        .executable(name: "imagequeue", targets: ["imagequeue"]),
        .executable(name: "imagequeue-worker", targets: ["imagequeue-worker"]),
        .executable(name: "imagequeue-bench", targets: ["ImageQueueBenchmarks"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket", from: "1.6.2"),
        .package(url: "https://github.com/vapor/multipart-kit", from: "4.7.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // C libraries from Debian: libhiredis-dev, libcurl4-openssl-dev, libssl-dev (OpenSSL:
        // TLS to Redis, under hiredis' RESP reader).
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),

        // OS threads for blocking C calls, shared by the two wrappers below.
        .target(name: "DedicatedThreads"),

        // posix_spawn with an empty signal mask, default handlers and no inherited descriptors:
        // how the demo starts its throwaway redis-server and the tests start every process.
        .target(name: "ChildProcess"),

        // Swift wrapper over hiredis (and OpenSSL for rediss://): the only code that touches
        // hiredis or OpenSSL pointers.
        .target(
            name: "RedisClient",
            dependencies: [
                "CHiredis",
                "COpenSSL",
                "DedicatedThreads",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // Swift wrapper over libcurl: the HTTP client the worker calls endpoints with;
        // the only code that touches libcurl pointers.
        .target(name: "CurlHTTP", dependencies: ["CCurl", "DedicatedThreads"]),

        // The producer library: models, keys, scripts, client, inspector.
        .target(
            name: "ImageQueue",
            dependencies: [
                "RedisClient",
                "DedicatedThreads",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            plugins: ["EmbedPlugin"]
        ),

        // The worker: claim loops, prompt enhancement, generation, result stores, metrics.
        .target(
            name: "ImageWorker",
            dependencies: [
                "ImageQueue",
                "RedisClient",
                "CurlHTTP",
                "COpenSSL",  // HMAC-SHA256 of webhook signatures
                "DedicatedThreads",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                // ComfyUI's progress and previews arrive over its WebSocket.
                .product(name: "WSClient", package: "swift-websocket"),
            ]
        ),

        // The HTTP API, live event streams, Prometheus metrics and the dashboard.
        .target(
            name: "ImageQueueServer",
            dependencies: [
                "ImageQueue",
                "RedisClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            // The dashboard's HTML, CSS and JS, embedded by the plugin (not Swift sources).
            exclude: ["Dashboard"],
            plugins: ["EmbedPlugin"]
        ),

        // The Telegram Bot API front: /image= commands in, live status edits and photos out.
        .target(
            name: "TelegramFront",
            dependencies: [
                "ImageQueue",
                "RedisClient",
                "CurlHTTP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MultipartKit", package: "multipart-kit"),
            ],
            plugins: ["EmbedPlugin"]
        ),

        // What `imagequeue worker` and the lean `imagequeue-worker` share: options, output,
        // logging and the exit codes.
        .target(
            name: "ImageQueueCommandLine",
            dependencies: [
                "DedicatedThreads",
                "ImageQueue",
                "ImageWorker",
                "RedisClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        .executableTarget(
            name: "imagequeue-worker",
            dependencies: [
                "ImageQueueCommandLine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // An idle worker's resident memory is mostly mapped code (docs/PERFORMANCE.md). In
            // release builds, linked by lld: export no symbols (SwiftPM exports them all, and the
            // loader searches that table for every symbol of libcurl's thirty libraries); pack
            // the relative relocations (DT_RELR: 1.4 MB of RELA read at every start otherwise);
            // and put the object files an idle worker runs first (ops/link/worker_order.py), so
            // the kernel's 64 KiB fault-around maps less cold code.
            linkerSettings: [
                .unsafeFlags(["-use-ld=lld", "-Xlinker", "--no-export-dynamic", "-Xlinker", "--exclude-libs=ALL",
                              "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                              "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/ops/link/imagequeue-worker.order",
                              "-Xlinker", "--no-warn-symbol-ordering"],
                             .when(platforms: [.linux], configuration: .release)),
            ]
        ),

        .executableTarget(
            name: "imagequeue",
            dependencies: [
                "ImageQueueCommandLine",
                "ImageQueue",
                "ImageQueueServer",
                "ChildProcess",
                "TelegramFront",
                "ImageWorker",
                "CurlHTTP",
                "RedisClient",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Throughput figures for docs/PERFORMANCE.md (not part of the test suite).
        .executableTarget(
            name: "ImageQueueBenchmarks",
            dependencies: [
                "DedicatedThreads",
                "ImageQueue",
                "RedisClient",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),

        // Build-time embedding of text files into the binary: lua/*.lua into ImageQueue,
        // lua/telegram/*.lua into TelegramFront, Sources/ImageQueueServer/Dashboard/ into
        // ImageQueueServer (Sources/EmbedPlugin says which target gets what).
        .executableTarget(name: "Embedder"),
        .plugin(
            name: "EmbedPlugin",
            capability: .buildTool(),
            dependencies: ["Embedder"],
            path: "Sources/EmbedPlugin"
        ),

        // Real redis-server processes and helpers shared by the test targets.
        .target(name: "TestSupport", dependencies: ["CurlHTTP", "ChildProcess", "DedicatedThreads", "RedisClient"], path: "Tests/TestSupport"),
        .testTarget(
            name: "RedisClientTests",
            dependencies: ["RedisClient", "TestSupport"]
        ),
        .testTarget(
            name: "CurlHTTPTests",
            dependencies: ["CurlHTTP", "TestSupport"],
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "ImageQueueTests",
            dependencies: ["ImageQueue", "RedisClient", "DedicatedThreads", "TestSupport"]
        ),
        .testTarget(
            name: "ImageWorkerTests",
            dependencies: ["ImageWorker", "ImageQueue", "ImageQueueCommandLine", "RedisClient", "CurlHTTP", "TestSupport",
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "WorkerProcessTests",
            dependencies: ["TestSupport", "CurlHTTP"]
        ),
        .testTarget(
            name: "ImageQueueServerTests",
            dependencies: ["ImageQueueServer", "ImageQueue", "RedisClient", "TestSupport",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "HummingbirdTesting", package: "hummingbird"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "ServeTests",
            dependencies: ["TestSupport", "CurlHTTP"]
        ),
        .testTarget(
            name: "TelegramFrontTests",
            dependencies: ["TelegramFront", "ImageQueue", "RedisClient", "TestSupport"]
        ),
        .testTarget(
            name: "TelegramTests",
            dependencies: ["TestSupport", "CurlHTTP"]
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["TestSupport"]
        ),
        .testTarget(
            name: "DeployTests",
            dependencies: ["TestSupport"]
        ),
        .testTarget(
            name: "OpsTests",
            dependencies: ["TestSupport", "CurlHTTP"]
        ),
        .testTarget(
            name: "ClusterTests",
            dependencies: ["RedisClient", "TestSupport"]
        ),
        .testTarget(
            name: "TLSTests",
            dependencies: ["TestSupport", "CurlHTTP"]
        ),
        .testTarget(
            name: "SentinelTests",
            dependencies: ["RedisClient", "TestSupport", "CurlHTTP"]
        ),
    ]
)
