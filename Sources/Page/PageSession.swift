import Configuration

/// Who is looking at the page and what they may do from it: the name runs record for them,
/// their scopes, and the form token every action form carries (the server checks it against
/// the session that sent it, so another site's page cannot post a form as them).
package struct PageSession: Sendable {
    /// As runs and locks record it (`demo`, `page:ops`).
    package let who: String
    package let scopes: Set<TokenScope>
    /// The per-session CSRF token, sent back in each form's `csrf` field.
    package let csrf: String
    /// Whether a sign-out button belongs on the page (not in the demo, which has no sign-in).
    package let signedIn: Bool

    package init(who: String, scopes: Set<TokenScope>, csrf: String, signedIn: Bool) {
        self.who = who
        self.scopes = scopes
        self.csrf = csrf
        self.signedIn = signedIn
    }

    package func may(_ scope: TokenScope) -> Bool { scopes.contains(scope) }
}

/// The actions the page offers, each a plain form posted to `/actions/NAME`.
package enum PageAction: String, Sendable, CaseIterable {
    case deploy, cancel, promote, rollback, lock, unlock, restore, forget

    /// The scope the API asks for the same thing.
    package var scope: TokenScope {
        switch self {
        case .deploy, .cancel, .promote, .rollback: return .deploy
        case .lock, .unlock, .restore, .forget: return .admin
        }
    }

    /// Actions that stop, skip or undo something ask "are you sure?" first (a page of its own,
    /// so it works without JavaScript).
    package var confirms: Bool {
        switch self {
        case .cancel, .promote, .rollback, .unlock, .forget: return true
        case .deploy, .lock, .restore: return false
        }
    }
}
