// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "rollgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "rollgate", targets: ["rollgate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // The only places C variadics and macros are touched.
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd",
                       providers: [.apt(["libmicrohttpd-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1",
                       providers: [.apt(["libyaml-dev"])]),
        // libmicrohttpd's own error answers (HTML compiled into the library) sent as JSON.
        .target(name: "CMicroHTTPDErrors", dependencies: ["CMicroHTTPD"]),
        // glibc's posix_spawn extensions (the hook runner) and prctl (secrets out of /proc).
        .target(name: "CSpawn"),

        // libcurl, loaded on first use (dlopen): a server that sends nothing never maps it.
        .target(name: "CCurl"),
        // libpq, loaded when a PostgreSQL database is opened (dlopen): SQLite servers never map it.
        .target(name: "CLibPQ"),
        // Every request rollgate sends: one port, one implementation (libcurl).
        .target(name: "Outbound", dependencies: ["CCurl"]),
        // YAML documents as trees of text with line numbers, over libyaml; knows nothing of config.
        .target(name: "YAML", dependencies: ["CYAML"]),
        // HTTP over libmicrohttpd; knows nothing of deploys.
        .target(name: "MicroHTTP", dependencies: ["CMicroHTTPD", "CMicroHTTPDErrors"]),
        // The domain: runs, steps, the roll, waiters, the queue. No C, no sockets, no processes.
        .target(name: "Rollout", dependencies: [
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ]),
        // AWS: SigV4, Query encoding, XML, credentials, the ELBv2 client.
        .target(name: "ELB", dependencies: [
            "Rollout", "Outbound",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // SQLite: connection, statements, migrator, the store.
        // The store over SQL, written once for both engines: the queue, the run's journal,
        // leases and fencing, history, events and deliveries, locks, retention.
        .target(name: "SQLStore", dependencies: ["Rollout"]),
        .target(name: "SQLiteStore", dependencies: ["CSQLite", "Rollout", "SQLStore"]),
        // PostgreSQL over libpq: connection, migrator, the store (several replicas share it).
        .target(name: "PostgresStore", dependencies: ["CLibPQ", "Rollout", "SQLStore"]),
        // What rollgate says, as JSON over HTTP and as text people read.
        .target(name: "WireFormat", dependencies: ["MicroHTTP", "Rollout"]),
        // The YAML config: every key checked, every error at once with its line.
        .target(name: "Configuration", dependencies: ["Rollout", "YAML"]),
        // Deploy hooks as process groups (posix_spawn), and this process's identity for leases.
        .target(name: "Hooks", dependencies: ["Rollout", "CSpawn", "Configuration"]),
        // Each service's load balancer (simulated or ELBv2) and its rolls, the targets' last states, check-config --remote.
        .target(name: "LoadBalancing", dependencies: [
            "Configuration", "Hooks", "ELB", "Outbound", "SQLStore", "Rollout",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Prometheus: the registry swift-metrics counts into, and gauges read at scrape time.
        .target(name: "Monitoring", dependencies: [
            "Rollout",
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // Who talks to rollgate and whom it tells: GitHub/GitLab/Slack/Standard Webhooks in,
        // notifications out (Slack, signed webhooks, GitHub deployment statuses).
        .target(name: "Integrations", dependencies: [
            "Configuration", "WireFormat", "Monitoring", "Outbound", "Rollout",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The status page: HTML without JavaScript needed, and plain text for curl.
        .target(name: "Page", dependencies: ["WireFormat", "Configuration", "LoadBalancing", "MicroHTTP", "Rollout"]),
        // The HTTP API: routes, access, streams, webhooks' doors, /metrics and /healthz.
        .target(name: "HTTPAPI", dependencies: [
            "WireFormat", "Configuration", "LoadBalancing", "Monitoring", "Integrations", "Page", "MicroHTTP", "Rollout",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The composition root: picks the engine from the config, wires the rest, starts and stops it.
        .target(name: "RollgateServer", dependencies: [
            "HTTPAPI", "Page", "Integrations", "Monitoring", "LoadBalancing", "Hooks", "Configuration", "WireFormat",
            "MicroHTTP", "SQLiteStore", "SQLStore", "PostgresStore", "Rollout", "Outbound",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "rollgate", dependencies: [
            "RollgateServer", "HTTPAPI", "Configuration", "WireFormat", "LoadBalancing", "Hooks", "MicroHTTP", "Outbound", "CSpawn", "PostgresStore", "SQLiteStore", "SQLStore",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // bench/roll-time.sh: the roll on the traffic model in real time (not shipped).
        .executableTarget(name: "roll-bench", dependencies: ["Rollout", "RolloutTesting", "SQLiteStore", "SQLStore", "Outbound",
                                                            .product(name: "Logging", package: "swift-log")]),

        // The tests' raw HTTP client (malformed requests included).
        .target(name: "HTTPTesting", dependencies: ["MicroHTTP"]),
        // Fakes shared by the tests: fake load balancer, recording executor, manual clock.
        .target(name: "RolloutTesting", dependencies: ["Rollout"]),
        // A real PostgreSQL for the tests (initdb, a free loopback port, stopped by PID).
        .target(name: "PostgresTesting", dependencies: ["PostgresStore"]),

        .testTarget(name: "RolloutTests", dependencies: ["Rollout", "RolloutTesting", "SQLiteStore", "SQLStore", "ELB",
                                                        .product(name: "MetricsTestKit", package: "swift-metrics")]),
        .testTarget(name: "YAMLTests", dependencies: ["YAML", "RolloutTesting"]),
        .testTarget(name: "PostgresStoreTests", dependencies: ["PostgresStore", "PostgresTesting", "Rollout", "SQLiteStore", "SQLStore"]),
        .testTarget(name: "StoreContractTests", dependencies: ["SQLiteStore", "SQLStore", "PostgresStore", "PostgresTesting", "Rollout", "RolloutTesting",
                                                            .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "MicroHTTPTests", dependencies: ["MicroHTTP", "HTTPTesting", "CMicroHTTPDErrors"]),
        .testTarget(name: "ELBTests", dependencies: ["ELB", "Rollout", "RolloutTesting", "MicroHTTP", "HTTPTesting",
                                                    .product(name: "MetricsTestKit", package: "swift-metrics")],
                    exclude: ["Fixtures"]),
        .testTarget(name: "RollgateTests", dependencies: ["RollgateServer", "HTTPAPI", "Page", "Integrations", "Monitoring", "LoadBalancing", "Hooks",
                                                        "Configuration", "WireFormat", "MicroHTTP", "SQLiteStore", "SQLStore", "Rollout", "RolloutTesting", "ELB", "Outbound", "HTTPTesting",
                                                        "PostgresStore", "PostgresTesting"],
                    exclude: ["Support/moto_fixture.py", "Support/elb_timing_proxy.py", "Support/tcp_proxy.py", "Support/webhook_sink.py", "Support/browser.py", "Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)
