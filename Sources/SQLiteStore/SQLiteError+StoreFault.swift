import CSQLite
import Rollout

extension SQLiteError: StoreFault {
    /// Busy, locked, read-only, I/O error, full, cannot open, protocol (the file's locks), and
    /// the interruptions of a closing connection can pass later; a constraint, a type
    /// mismatch, a misuse or a malformed statement never will.
    public var summary: String { "SQLite error \(code): \(message)" }
    /// SQLITE_CONSTRAINT_UNIQUE or SQLITE_CONSTRAINT_PRIMARYKEY.
    public var isUniqueViolation: Bool { code == 2067 || code == 1555 }

    public var mayPassLater: Bool {
        switch code & 0xff {
        case SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_PROTOCOL,
             SQLITE_INTERRUPT, SQLITE_NOMEM, SQLITE_ABORT:
            return true
        default:
            return false
        }
    }
}
