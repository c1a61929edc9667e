@testable import Configuration
@testable import HTTPAPI
@testable import Hooks
@testable import Integrations
@testable import Monitoring
@testable import WireFormat
import Testing
@testable import RollgateServer
import Rollout

@Suite struct ConfigTests {
    let loader = ConfigLoader(environment: ["ROLLGATE_TOKEN_CI": "ci-secret-0123456789", "GITHUB_WEBHOOK_SECRET": "github-secret-0123456789"])

    @Test func readsTheDesignExample() throws {
        let config = try loader.parse("""
            listen: 127.0.0.1:9090
            database: ./data/rollgate.db
            public_dir: ./public
            api_tokens:
              - {name: ci, token_env: ROLLGATE_TOKEN_CI}
              - {name: ops, token: "a-literal-token-1234"}
            github: {secret_env: GITHUB_WEBHOOK_SECRET}
            services:
              - name: web
                target_group_arn: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/abc
                poll_interval: 500ms
                drain_timeout: 10m
                healthy_timeout: 1m30s
                hooks:
                  prepare: ./fetch.sh
                  deploy: ./deploy.sh
                  verify: curl -f http://$ROLLGATE_TARGET_ID/health
                hook_timeout: 15m
              - name: demo
                simulated: {targets: 4, drain_seconds: 5, healthy_seconds: 2.5, unhealthy_targets: [demo-4]}
                hooks: {deploy: echo hi}
            """)
        #expect(config.listen == ListenAddress(host: "127.0.0.1", port: 9090))
        #expect(config.database == "./data/rollgate.db")
        #expect(config.apiTokens.map(\.name) == ["ci", "ops"])
        #expect(config.apiTokens[0].secret == "ci-secret-0123456789")
        let web = try #require(config.service(named: "web"))
        #expect(web.plan.pollInterval == .milliseconds(500))
        #expect(web.plan.drainTimeout == .seconds(600))
        #expect(web.plan.healthyTimeout == .seconds(90))
        #expect(web.plan.hooks == HookCommands(prepare: "./fetch.sh", deploy: "./deploy.sh", verify: "curl -f http://$ROLLGATE_TARGET_ID/health"))
        #expect(web.source == .awsTargetGroups(arns: ["arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/abc"]))
        let demo = try #require(config.service(named: "demo"))
        #expect(demo.source == .simulated(SimulationSettings(targets: 4, drainTime: .seconds(5), healthyTime: .milliseconds(2500),
                                                             port: 80, unhealthyTargets: ["demo-4"])))
        #expect(demo.plan.pollInterval == .seconds(1), "the default poll interval")
        #expect(demo.plan.healthyTimeout == .seconds(15) && demo.plan.drainTimeout == .seconds(20),
                "a simulation's unset waits are twice its times plus 10 s: demo-4 fails in 15 s, not 5 min")
        #expect(!config.isDemo)
    }

    /// Each bad file gets an error naming the key and its line.
    @Test(arguments: [
        ("services:\n  - name: web\n    simulated: {targets: 2}\n    hooks: {deploy: x}\n    poll_intervall: 1s\n", "services[0].poll_intervall (line 5): unknown key"),
        ("services:\n  - name: web\n    simulated: {targets: 2}\n    hooks: {deploy: x}\n    drain_timeout: 10 minutes\n", "services[0].drain_timeout (line 5): expected a duration like 500ms, 30s, 10m or 1h, got 10 minutes"),
        ("services:\n  - name: web\n    simulated: {targets: 2}\n    hooks: {prepare: x}\n", "services[0].hooks.deploy (line 4): missing (required)"),
        ("api_tokens:\n  - {name: ci, token_env: NOT_SET_ANYWHERE}\nservices: []\n", "api_tokens[0].token_env (line 2): environment variable NOT_SET_ANYWHERE is not set or empty"),
        ("services:\n  - name: web\n    hooks: {deploy: x}\n", "services[0].target_group_arn (line 2): missing: give target_group_arn: ARN, target_group_arns: [ARN, ...] or simulated: {targets: 3}"),
        ("listen: 8080\nservices: []\n", "listen (line 1): expected HOST:PORT such as 127.0.0.1:8080, got 8080"),
        ("services:\n  - name: Web Site\n    simulated: {}\n    hooks: {deploy: x}\n", "services[0].name (line 2): a service name is 1-64 of a-z, 0-9, - and _ (got Web Site)"),
        ("services:\n  - name: web\n    simulated: {targets: 0}\n    hooks: {deploy: x}\n", "services[0].simulated.targets (line 3): between 1 and 100"),
        ("services:\n  - name: web\n    simulated: {}\n    hooks: {deploy: x}\n  - name: web\n    simulated: {}\n    hooks: {deploy: x}\n", "services[1].name (line 5): service web is defined twice"),
        ("services:\n  - name: web\n    simulated: {}\n    hooks: {deploy: x}\n    poll_interval: 10ms\n", "services[0].poll_interval (line 5): must be at least 100ms"),
        ("services:\n  - name: web\n    simulated: {targets: 3, unhealthy_targets: [web-3, web-9]}\n    hooks: {deploy: x}\n", "services[0].simulated.unhealthy_targets (line 3): web-9 is not one of this simulation's targets (web-1 to web-3)"),
        ("services:\n  - name: web\n    simulated: {}\n    hooks: {}\n  - name: web\n    simulated: {}\n    hooks: {deploy: x}\n", "services[0].hooks.deploy (line 4): missing (required)\nservices[1].name (line 5): service web is defined twice (first as services[0])"),
        ("services: [\n", "not valid YAML: line 2, column 1: did not find expected node content (while parsing a flow node)"),
        ("services:\n  - name: web\n    simulated: {}\n    hooks: {deploy: x}\n    hooks: {deploy: y}\n", "services[0].hooks (line 5): written twice (first on line 4); keep one"),
        ("listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\nservices: []\n", "listen (line 2): written twice (first on line 1); keep one"),
        ("a: 1\n---\nb: 2\n", "not valid YAML: line 2, column 1: a second document (---) in the file; the config is one document"),
        ("", "the config file is empty"),
        ("- just\n- a list\n", "(top level) (line 1): expected a mapping of key: value"),
    ])
    func badFilesNameTheKeyAndLine(yaml: String, expected: String) {
        #expect { try loader.parse(yaml) } throws: { error in
            let text = "\(error)"
            if !text.hasPrefix(expected) { Issue.record("got: \(text)") }
            return text.hasPrefix(expected)
        }
    }

    @Test func aReplicaNameIsAShortPlainWord() throws {
        #expect(try loader.parse("name: rollgate-a.eu_1\nservices: [{name: web, simulated: {}, hooks: {deploy: x}}]").name == "rollgate-a.eu_1")
        #expect(try loader.parse("services: [{name: web, simulated: {}, hooks: {deploy: x}}]").name == nil, "the host name at start")
        for bad in ["''", "\"two words\"", "\"a/b\"", String(repeating: "x", count: 65), "\"é\""] {
            #expect { _ = try loader.parse("name: \(bad)\nservices: [{name: web, simulated: {}, hooks: {deploy: x}}]") }
                throws: { "\($0)".contains("name") && "\($0)".contains("1 to 64 letters") }
        }
    }

    @Test func durations() {
        #expect(DurationText.parse("500ms") == .milliseconds(500))
        #expect(DurationText.parse("30s") == .seconds(30))
        #expect(DurationText.parse("10m") == .seconds(600))
        #expect(DurationText.parse("1h") == .seconds(3600))
        #expect(DurationText.parse("1m30s") == .seconds(90))
        for bad in ["", "10", "s", "10x", "-5s", "1.5s", "10 s", "99999999999999h"] {
            #expect(DurationText.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func theDemoIsLoopbackWithoutTokens() {
        let demo = Config.demo()
        #expect(demo.isDemo)
        #expect(demo.listen.isLoopback)
        #expect(demo.services.map(\.name) == ["demo"])
        guard case .simulated(let settings) = demo.services[0].source else { Issue.record("not simulated"); return }
        #expect(settings.targets == 3)
    }

    @Test func shutdownRetentionAndHookEnvironment() throws {
        let config = try ConfigLoader(environment: ["ROLLGATE_TOKEN_CI": "ci-secret-0123456789", "GH": "gh-secret-0123456789"]).parse("""
            shutdown_timeout: 90s
            retention: {keep_runs: 500, keep_logs: 30d}
            api_tokens: [{name: ci, token_env: ROLLGATE_TOKEN_CI}]
            github: {secret_env: GH}
            services:
              - name: web
                simulated: {targets: 2}
                hook_env: [AWS_PROFILE, NPM_TOKEN]
                hooks: {deploy: ./deploy.sh}
            """)
        #expect(config.shutdownTimeout == .seconds(90))
        #expect(config.retention == Retention(keepRuns: 500, keepLogs: .seconds(30 * 86_400)))
        #expect(config.secretVariables == ["ROLLGATE_TOKEN_CI", "GH"])
        #expect(config.services[0].hookEnv == ["AWS_PROFILE", "NPM_TOKEN"])
        let defaults = try loader.parse("services: [{name: web, simulated: {targets: 1}, hooks: {deploy: x}}]")
        #expect(defaults.shutdownTimeout == .seconds(60))
        #expect(defaults.retention == Retention(keepRuns: 2000, keepLogs: .seconds(180 * 86_400)), "a sensible default")
        let everything = try loader.parse("retention: {keep_runs: all, keep_logs: all}\nservices: [{name: web, simulated: {targets: 1}, hooks: {deploy: x}}]")
        #expect(everything.retention == Retention())
        let partly = try loader.parse("retention: {keep_runs: 50}\nservices: [{name: web, simulated: {targets: 1}, hooks: {deploy: x}}]")
        #expect(partly.retention == Retention(keepRuns: 50, keepLogs: .seconds(180 * 86_400)), "a key left out keeps its default")
    }

    @Test func hookEnvNeverPassesRollgatesOwnSecrets() {
        #expect {
            _ = try loader.parse("""
                api_tokens: [{name: ci, token_env: ROLLGATE_TOKEN_CI}]
                services: [{name: web, simulated: {targets: 1}, hook_env: [ROLLGATE_TOKEN_CI], hooks: {deploy: x}}]
                """)
        } throws: { "\($0)".contains("services[0].hook_env") && "\($0)".contains("ROLLGATE_TOKEN_CI holds one of rollgate's own secrets") }
        #expect(throws: ConfigErrors.self) { _ = try loader.parse("retention: {keep_runs: 0}\nservices: [{name: web, simulated: {}, hooks: {deploy: x}}]") }
        #expect(throws: ConfigErrors.self) { _ = try loader.parse("shutdown_timeout: never\nservices: [{name: web, simulated: {}, hooks: {deploy: x}}]") }
    }

    @Test func theAWSCallBudgetIsBoundedByWhatELBRefills() throws {
        let service = "services: [{name: web, simulated: {}, hooks: {deploy: x}}]"
        #expect(try loader.parse(service).aws.budget == AWSCallBudgetRates(), "4 and 2 a second by default")
        let set = try loader.parse("aws: {describe_per_second: 8, changes_per_second: 0.5}\n" + service).aws.budget
        #expect(set.describePerSecond == 8 && set.changesPerSecond == 0.5)
        #expect { _ = try loader.parse("aws: {describe_per_second: 40}\n" + service) } throws: {
            "\($0)".contains("aws.describe_per_second") && "\($0)".contains("between 0.1 and 10")
        }
        #expect(throws: ConfigErrors.self) { _ = try loader.parse("aws: {changes_per_second: 0}\n" + service) }
    }

    @Test func theLeaseIsBoundedAndHasADefault() throws {
        let service = "services: [{name: web, simulated: {}, hooks: {deploy: x}}]"
        #expect(try loader.parse("lease: 30s\n" + service).lease == .seconds(30))
        #expect(try loader.parse(service).lease == .seconds(15), "the default")
        #expect { _ = try loader.parse("lease: 1s\n" + service) } throws: { "\($0)".contains("lease") && "\($0)".contains("at least 3s") }
        #expect { _ = try loader.parse("lease: 1h\n" + service) } throws: { "\($0)".contains("lease") && "\($0)".contains("at most 5m") }
    }

    @Test func theHookEnvironmentDropsSecretsAndMasksTheirValues() {
        var config = Config(apiTokens: [APIToken(name: "ci", secret: "file-token-0123456789")], services: [])
        config.secretVariables = ["ROLLGATE_TOKEN_CI"]
        let hooks = HookEnvironment(server: ["PATH": "/bin", "ROLLGATE_TOKEN_CI": "env-token-0123", "AWS_SECRET_ACCESS_KEY": "aws-secret-0123",
                                             "NPM_TOKEN": "npm-0123456", "AWS_PROFILE": "prod"], config: config)
        #expect(hooks.base(passing: []) == ["PATH": "/bin", "AWS_PROFILE": "prod"])
        #expect(hooks.base(passing: ["NPM_TOKEN", "ROLLGATE_TOKEN_CI"]) == ["PATH": "/bin", "AWS_PROFILE": "prod", "NPM_TOKEN": "npm-0123456"])
        let mask = hooks.mask(config: config)
        #expect(mask.apply("a file-token-0123456789 b env-token-0123 c aws-secret-0123 d npm-0123456") == "a *** b *** c *** d ***")
        #expect(mask.apply("prod /bin") == "prod /bin")
    }

    @Test func maxUnavailableIsANumberOrAPercentage() throws {
        let parse = { (value: String) in try self.loader.parse("services: [{name: web, simulated: {targets: 8}, max_unavailable: \(value), hooks: {deploy: x}}]").services.first?.plan.maxUnavailable }
        #expect(try parse("1") == .count(1))
        #expect(try parse("2") == .count(2))
        #expect(try parse("25%") == .percent(25))
        #expect(try loader.parse("services: [{name: web, simulated: {}, hooks: {deploy: x}}]").services.first?.plan.maxUnavailable == .count(1), "one at a time by default")
        for bad in ["0", "-1", "0%", "150%", "two", "1.5"] {
            #expect { _ = try parse(bad) } throws: { "\($0)".contains("services[0].max_unavailable") && "\($0)".contains("percentage like 25%") }
        }
        #expect(MaxUnavailable.percent(25).resolve(total: 8) == 2)
        #expect(MaxUnavailable.percent(25).resolve(total: 3) == 1, "rounded down, never 0")
        #expect(MaxUnavailable.count(5).resolve(total: 3) == 3, "never more than there are")
    }

    @Test func connectionLimits() throws {
        let defaults = try loader.parse("services: [{name: web, simulated: {}, hooks: {deploy: x}}]").connections
        #expect(defaults == ConnectionLimits())
        #expect(defaults.perAddress == 256 && defaults.total == 4096 && defaults.idleTimeout == .seconds(10))
        let set = try loader.parse("http: {max_connections: 100, connections_per_address: 5, idle_timeout: 3s}\nservices: [{name: web, simulated: {}, hooks: {deploy: x}}]").connections
        #expect(set.total == 100 && set.perAddress == 5 && set.idleTimeout == .seconds(3))
        for (yaml, says) in [("{max_connections: 3}", "http.max_connections"), ("{connections_per_address: 0}", "http.connections_per_address"),
                             ("{idle_timeout: 10ms}", "http.idle_timeout"), ("{idle_timeout: 2h}", "at most 1h"), ("{max_conections: 9}", "max_conections")] {
            #expect { _ = try loader.parse("http: \(yaml)\nservices: [{name: web, simulated: {}, hooks: {deploy: x}}]") } throws: { "\($0)".contains(says) }
        }
    }

    @Test func canaryAndOnFailure() throws {
        let plan = try loader.parse("services: [{name: web, simulated: {}, canary: {targets: 2, bake: 5m, check: ./errors.sh}, on_failure: rollback, hooks: {deploy: x}}]")
            .services.first?.plan
        #expect(plan?.canary == Canary(targets: 2, bake: .seconds(300), check: "./errors.sh"))
        #expect(plan?.onFailure == .rollback)
        let defaults = try loader.parse("services: [{name: web, simulated: {}, canary: {bake: 1m}, hooks: {deploy: x}}]").services.first?.plan
        #expect(defaults?.canary == Canary(targets: 1, bake: .seconds(60), check: nil))
        #expect(defaults?.onFailure == .stop)
        for (yaml, says) in [("canary: {targets: 1}", "services[0].canary.bake"), ("canary: {targets: 0, bake: 1m}", "services[0].canary.targets"),
                             ("on_failure: undo", "services[0].on_failure"), ("canary: {bake: 1m, chek: x}", "chek")] {
            #expect { _ = try loader.parse("services: [{name: web, simulated: {}, \(yaml), hooks: {deploy: x}}]") } throws: { "\($0)".contains(says) }
        }
    }

    @Test func fastDrainTakesACheckAndAQuietTime() throws {
        let fast = try loader.parse("services: [{name: web, simulated: {targets: 2}, fast_drain: {check: ./idle.sh --port 80, quiet: 10s}, hooks: {deploy: x}}]")
        #expect(fast.services.first?.plan.fastDrain == FastDrain(check: "./idle.sh --port 80", quiet: .seconds(10)))
        #expect(try loader.parse("services: [{name: web, simulated: {}, hooks: {deploy: x}}]").services.first?.plan.fastDrain == nil)
        let measuring = try loader.parse("services: [{name: web, simulated: {}, fast_drain: {check: x, quiet: 10s, measure_only: true}, hooks: {deploy: x}}]")
        #expect(measuring.services.first?.plan.fastDrain == FastDrain(check: "x", quiet: .seconds(10), measureOnly: true))
        for (yaml, says) in [("{check: x}", "services[0].fast_drain.quiet"), ("{quiet: 10s}", "services[0].fast_drain.check"),
                             ("{check: x, quiet: 10s, measure_only: sometimes}", "services[0].fast_drain.measure_only"),
                             ("{check: x, quiet: 500ms}", "services[0].fast_drain.quiet"), ("{check: x, quiet: 10s, quite: 1}", "quite")] {
            #expect { _ = try loader.parse("services: [{name: web, simulated: {}, fast_drain: \(yaml), hooks: {deploy: x}}]") }
                throws: { "\($0)".contains(says) }
        }
    }

    @Test func healthCheckDuringRollTakesELBsBoundsAndATargetGroup() throws {
        let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
        let tight = try loader.parse("services: [{name: web, target_group_arn: \(arn), health_check_during_roll: {interval: 5s, healthy_threshold: 2}, hooks: {deploy: x}}]")
        #expect(tight.services.first?.plan.healthCheckDuringRoll == HealthCheckTightening(interval: .seconds(5), healthyThreshold: 2))
        for (yaml, says) in [("{interval: 4s, healthy_threshold: 2}", "health_check_during_roll.interval"),
                             ("{interval: 301s, healthy_threshold: 2}", "whole seconds from 5s to 300s"),
                             ("{interval: 5500ms, healthy_threshold: 2}", "whole seconds from 5s to 300s"),
                             ("{interval: 5s, healthy_threshold: 1}", "2 to 10 (ELB's bounds)"),
                             ("{interval: 5s, healthy_threshold: 11}", "2 to 10 (ELB's bounds)"),
                             ("{interval: 5s}", "health_check_during_roll.healthy_threshold"),
                             ("{interval: 5s, healthy_threshold: 2, timeout: 2s}", "timeout")] {
            #expect { _ = try loader.parse("services: [{name: web, target_group_arn: \(arn), health_check_during_roll: \(yaml), hooks: {deploy: x}}]") }
                throws: { "\($0)".contains(says) }
        }
        #expect { _ = try loader.parse("services: [{name: web, simulated: {}, health_check_during_roll: {interval: 5s, healthy_threshold: 2}, hooks: {deploy: x}}]") }
            throws: { "\($0)".contains("needs target_group_arn") }
    }

    @Test func severalTargetGroupsAreAListOfValidARNs() throws {
        let a = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef"
        let b = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-internal/fedcba9876543210"
        let two = try loader.parse("services: [{name: web, target_group_arns: [\(a), \(b)], hooks: {deploy: x}}]")
        #expect(two.services.first?.source == .awsTargetGroups(arns: [a, b]))
        for (yaml, says) in [("target_group_arns: [\(a), \(a)]", "named twice"),
                             ("target_group_arns: []", "1 to 5 target groups"),
                             ("target_group_arns: [\(a), nope]", "expected arn:aws:elasticloadbalancing"),
                             ("target_group_arn: \(a), target_group_arns: [\(b)]", "not both"),
                             ("target_group_arns: [\(a), \(b)], health_check_during_roll: {interval: 5s, healthy_threshold: 2}", "takes one target group")] {
            #expect { _ = try loader.parse("services: [{name: web, \(yaml), hooks: {deploy: x}}]") } throws: { "\($0)".contains(says) }
        }
    }

    @Test func scopesReadsTLSAndNotifications() throws {
        let directory = TempDirectory()
        let key = directory.write("key.pem", "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
        let cert = directory.write("cert.pem", "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
        let loader = ConfigLoader(environment: ["RO": "read-only-token-0123", "HOOK": "https://hooks.slack.com/services/T/B/secret",
                                                "NS": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "GH_TOKEN": "ghp_0123456789"])
        let config = try loader.parse("""
            listen: 0.0.0.0:8443
            public_read: true
            tls: {key_file: \(key), cert_file: \(cert)}
            notifications: {retry_first: 500ms, retry_max: 1m, attempts: 10}
            api_tokens: [{name: grafana, token_env: RO, scopes: [read]}]
            services:
              - name: web
                simulated: {targets: 1}
                hooks: {deploy: x}
                notify:
                  slack_webhook_env: HOOK
                  webhook: {url: https://ci.example.com/hook, secret_env: NS}
                  github: {token_env: GH_TOKEN}
            """)
        #expect(config.apiTokens.first?.scopes == [.read])
        #expect(config.publicRead && config.readsAreOpen)
        #expect(config.tls?.certificate.contains("BEGIN CERTIFICATE") == true)
        #expect(config.notificationRetry == RetrySettings(first: .milliseconds(500), max: .seconds(60), attempts: 10))
        #expect(config.services[0].notify.slackWebhook == "https://hooks.slack.com/services/T/B/secret")
        #expect(config.services[0].notify.githubToken == "ghp_0123456789")
        #expect(Set(config.secretVariables).isSuperset(of: ["RO", "HOOK", "NS", "GH_TOKEN"]), "notification secrets are kept from hooks")
        #expect { _ = try loader.parse("api_tokens: [{name: x, token_env: RO, scopes: [write]}]\nservices: [{name: web, simulated: {}, hooks: {deploy: x}}]") }
            throws: { "\($0)".contains("a list of read, deploy, admin") }
        #expect { _ = try loader.parse("tls: {key_file: /nope, cert_file: /nope}\nservices: [{name: web, simulated: {}, hooks: {deploy: x}}]") }
            throws: { "\($0)".contains("tls.key_file") && "\($0)".contains("cannot read a PEM file at /nope") }
        #expect { _ = try loader.parse("services: [{name: web, simulated: {}, hooks: {deploy: x}, notify: {webhook: {url: https://x}}}]") }
            throws: { "\($0)".contains("always signed") }
        #expect { _ = try loader.parse("github: {}\nservices: [{name: web, simulated: {}, hooks: {deploy: x}}]") }
            throws: { "\($0)".contains("without it the endpoint stays closed") }
    }
}
