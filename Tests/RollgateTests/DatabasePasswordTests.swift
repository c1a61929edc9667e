import Foundation
import Testing
@testable import Configuration
@testable import Hooks
import PostgresStore
import PostgresTesting
@testable import RollgateServer
import Rollout

/// `database_password_env`: the PostgreSQL password from the environment, never in the file:
/// it reaches libpq (a role that must give it connects), hooks never get its variable, logs
/// mask it, and a URI is never shown with a password in it.
@Suite(.serialized) struct DatabasePasswordTests {
    let directory = TempDirectory()
    static let server: Result<PostgresServer, Error> = Result { try PostgresServer() }

    func load(_ yaml: String, _ environment: [String: String], lint: Bool = false) throws -> Config {
        try ConfigLoader(environment: environment, lint: lint).parse(yaml)
    }

    @Test func thePasswordComesFromTheNamedVariableAndReachesPostgreSQL() throws {
        let password = "p@ss w/rd:&?=%é"
        let uri = try Self.server.get().databaseOwned(byRoleWithPassword: "deployer", password: password)
        let yaml = """
            database: \(uri)
            database_password_env: ROLLGATE_DB_PASSWORD
            api_tokens: [{name: ci, token: ci-token-0123456789abcdef}]
            services: [{name: web, simulated: {targets: 2}, hooks: {deploy: 'true'}}]
            """
        var config = try load(yaml, ["ROLLGATE_DB_PASSWORD": password])
        #expect(config.databasePassword == password)
        #expect(config.secretVariables.contains("ROLLGATE_DB_PASSWORD"))
        let hooks = HookEnvironment(server: ["ROLLGATE_DB_PASSWORD": password, "PATH": "/bin"], config: config)
        #expect(hooks.base(passing: ["ROLLGATE_DB_PASSWORD"])["ROLLGATE_DB_PASSWORD"] == nil, "rollgate's own secret: never passed to hooks")
        #expect(hooks.mask(config: config).apply("connecting with \(password)") == "connecting with ***")
        config.database = uri
        let app = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                          environment: [:], logger: .quiet)
        #expect(try app.store.runs(.init()).isEmpty, "connected, migrated and read as the role that needs the password")
        config.databasePassword = nil
        #expect(throws: (any Error).self, "without it the role is refused") {
            _ = try App(config: config, migrationsDirectory: migrationsDirectory, publicDirectory: publicDirectory,
                        environment: ["PGPASSWORD": ""], logger: .quiet)
        }
    }

    @Test func misuseIsAConfigErrorThatSaysWhatToDo() throws {
        let postgres = "database: postgresql://deployer@127.0.0.1:5432/rollgate\n"
        let rest = "api_tokens: [{name: ci, token: ci-token-0123456789abcdef}]\nservices: [{name: web, simulated: {targets: 2}, hooks: {deploy: 'true'}}]\n"
        #expect { try load(postgres + "database_password_env: NOPE\n" + rest, [:]) } throws: {
            "\($0)".contains("database_password_env") && "\($0)".contains("NOPE is not set")
        }
        #expect { try load("database: ./rollgate.db\ndatabase_password_env: PW\n" + rest, ["PW": "x"]) } throws: {
            "\($0)".contains("SQLite has none")
        }
        #expect { try load("database: postgresql://deployer:inline@127.0.0.1/rollgate\ndatabase_password_env: PW\n" + rest, ["PW": "x"]) } throws: {
            "\($0)".contains("holds a password already")
        }
        let linted = ConfigLoader(environment: [:], lint: true)
        _ = try linted.parse(postgres + "database_password_env: NOPE\n" + rest)
        #expect(linted.warnings.contains { $0.contains("NOPE is not set here") }, "check-config warns, serve refuses")
    }

    @Test func aURIIsNeverShownWithItsPassword() {
        #expect(PostgresURI.redacted("postgresql://app:s3cret@db:5432/r?sslmode=require") == "postgresql://app:***@db:5432/r?sslmode=require")
        #expect(PostgresURI.redacted("postgresql://app@db/r?sslmode=require&password=s3cret") == "postgresql://app@db/r?sslmode=require&password=***")
        #expect(PostgresURI.redacted("postgresql://app@db/r") == "postgresql://app@db/r")
        #expect(PostgresURI.connecting("postgresql://app@db/r", password: "a b&c") == "postgresql://app@db/r?password=a%20b%26c")
        #expect(PostgresURI.connecting("postgresql://app@db/r?sslmode=require", password: "x") == "postgresql://app@db/r?sslmode=require&password=x")
        #expect(PostgresURI.connecting("./rollgate.db", password: "x") == "./rollgate.db")
    }
}
