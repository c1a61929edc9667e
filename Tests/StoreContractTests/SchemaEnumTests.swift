import Foundation
import Testing
import Rollout
import RolloutTesting
@testable import SQLiteStore
@testable import SQLStore

/// Every state column's CHECK, as the migrations leave it, names exactly the Swift enum's
/// cases: a case added in Swift without a migration (or a value the schema allows that
/// Swift cannot read) fails here, not in production.
@Suite struct SchemaEnumTests {
    let db = TempDatabase()

    /// The quoted values the final schema's CHECK allows for `column` of `table`, read from
    /// `sqlite_master` (after every migration, tables rebuilt included).
    func allowed(_ table: String, _ column: String, in connection: Connection) throws -> Set<String> {
        let sql = try #require(try connection.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?")
            .rows([.text(table)]) { $0.text(0) }.first, "no table \(table)")
        // The column's definition: from its name to the next column (a comma at depth 0).
        // Comments out (they hold commas and words), then split at the top level's commas.
        let plain = sql.split(separator: "\n").map { $0.split(separator: "--", maxSplits: 1, omittingEmptySubsequences: false).first ?? "" }
            .joined(separator: "\n")
        let body = String(plain[plain.firstIndex(of: "(")!...].dropFirst())
        var definitions: [String] = []
        var depth = 0, current = ""
        for character in body {
            if character == "(" { depth += 1 } else if character == ")" { depth -= 1 }
            if character == "," && depth == 0 { definitions.append(current); current = "" } else { current.append(character) }
        }
        definitions.append(current)
        let definition = try #require(definitions.first { $0.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix(column + " ") },
                                      "no column \(column) in \(table)")
        return Set(definition.matches(of: /'([a-z_]+)'/).map { String($0.output.1) })
    }

    @Test func stateColumnsNameExactlyTheEnumsCases() throws {
        _ = try Store(path: db.path, migrator: Migrator(directory: migrationsDirectory))
        let connection = try Connection(path: db.path)
        let phases = Set(Phase.allCases.map(\.rawValue))
        let expected: [(String, String, Set<String>)] = [
            ("runs", "status", Set(RunStatus.allCases.map(\.rawValue))),
            ("runs", "kind", Set(RunKind.Name.allCases.map(\.rawValue))),
            ("steps", "phase", phases),
            ("steps", "status", Set(StepStatus.allCases.map(\.rawValue))),
            ("log_lines", "stream", Set(LogLine.Stream.allCases.map(\.rawValue))),
            ("log_lines", "phase", phases),
            ("left_out_targets", "phase", phases),
            ("run_targets", "progress", Set(TargetProgress.allCases.map(\.rawValue))),
            ("run_targets", "rollback", Set(RollbackProgress.allCases.map(\.rawValue))),
            ("run_events", "event", Set(RunEventKind.allCases.map(\.rawValue))),
            ("deliveries", "status", Set(DeliveryStatus.allCases.map(\.rawValue))),
        ]
        for (table, column, cases) in expected {
            #expect(try allowed(table, column, in: connection) == cases, "\(table).\(column)")
        }
        #expect(RunKind.deploy.name == "deploy" && RunKind.restore(Target(id: "t", port: 1)).name == "restore")
    }
}
