import Configuration
import Integrations
import Monitoring
import WireFormat
import MicroHTTP
import Rollout
import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `POST /api/v1/deploys` and what every way of starting a deploy shares.
extension API {
    func deploy(_ request: HTTPRequest) async throws -> HTTPResponse {
        let caller = try caller(request)
        let body = try strictObject(request.body, allowed: ["service", "version", "reason", "wait_for_lock", "requested_by"])
        let service = try field(body, "service", required: true)!
        let version = try field(body, "version", required: true)!
        let reason = try field(body, "reason", required: false)
        let waitForLock = try flag(body, "wait_for_lock")
        var requestedBy = caller.name
        if let person = try field(body, "requested_by", required: false) {
            guard caller.token?.bot == true else {
                throw Refusal(status: 403, code: "not_a_bot",
                              message: "only a token marked bot: true may deploy on someone's behalf (requested_by)")
            }
            guard (1...100).contains(person.utf8.count) else {
                throw Refusal(status: 422, code: "invalid_field", message: "requested_by must be 1-100 bytes")
            }
            requestedBy = "\(person) (via \(caller.name))"
        }
        // An Idempotency-Key belongs to the token that sent it.
        var key: String?
        if let presented = request.header("idempotency-key") {
            guard (1...200).contains(presented.utf8.count),
                  !hasControlCharacter(presented) else {
                throw Refusal(status: 400, code: "invalid_idempotency_key", message: "Idempotency-Key must be 1-200 printable characters")
            }
            key = "\(caller.name):\(presented)"
        }
        if let key, let earlier = try await read({ try $0.run(idempotencyKey: key) }) {
            guard earlier.service == service, earlier.version == version, earlier.reason == reason,
                  earlier.waitForLock == waitForLock, earlier.requestedBy == requestedBy else {
                throw Refusal(status: 422, code: "idempotency_key_reused",
                              message: "this Idempotency-Key was used for run \(earlier.id) with a different body")
            }
            let id = earlier.id
            let full = try await read({ try $0.run(id) }) ?? earlier
            var response = HTTPResponse.json(202, JSONWriter.bytes { $0.run(full, publicURL: config.publicURL) })
            response.headers.append(("Idempotent-Replayed", "true"))
            return response
        }
        let outcome = try await enqueueDeploy(service: service, version: version, reason: reason, requestedBy: requestedBy,
                                              key: key, waitForLock: waitForLock)
        var response = HTTPResponse.json(202, JSONWriter.bytes { $0.run(outcome.run, publicURL: config.publicURL) })
        response.headers.append(("Location", "/api/v1/runs/\(outcome.run.id)"))
        if outcome.replayed { response.headers.append(("Idempotent-Replayed", "true")) }
        return response
    }

    /// Checks and queues a deploy (API, webhooks, Slack): the service exists, the version is
    /// one a hook may receive, the reason is short, the lock (unless waiting for it).
    /// `replayed`: the same key asked for the same deploy at the same moment (the store's one
    /// transaction found the run the other request created): that run, not a second one.
    func enqueueDeploy(service: String, version: String, reason: String?, requestedBy: String, key: String?,
                       waitForLock: Bool, rollbackFrom: String? = nil) async throws -> (run: Run, superseded: [RunID], replayed: Bool) {
        try knownService(service)
        guard Version.isValid(version) else {
            throw Refusal(status: 422, code: "invalid_version",
                          message: "version \(JSONText.quote(String(version.prefix(140)))) is refused: \(Version.rule)")
        }
        if let reason {
            guard reason.utf8.count <= 1000 else { throw Refusal(status: 422, code: "invalid_reason", message: "reason is longer than 1000 bytes") }
            try refuseUnreadable(reason, named: "reason", code: "invalid_reason")
        }
        let now = clock.now
        if !waitForLock, let lock = try await read({ try $0.lock(service: service, at: now) }) {
            throw Locked(lock: lock)
        }
        switch try await requests.enqueue(service: service, version: version, reason: reason, requestedBy: requestedBy,
                                          idempotencyKey: key, kind: .deploy, waitForLock: waitForLock, rollbackFrom: rollbackFrom, at: now) {
        case .created(let run, let superseded):
            logger.info("deploy queued", metadata: ["run.id": "\(run.id)", "service": "\(service)", "version": "\(version)",
                                                    "requested_by": "\(requestedBy)", "superseded": "\(superseded)"])
            wakeDispatcher()
            return (run, superseded, false)
        case .replayed(let run):
            return (run, [], true)
        case .keyConflict(let run):
            throw Refusal(status: 422, code: "idempotency_key_reused", message: "this key was used for run \(run.id)")
        }
    }

    /// A JSON object with only the `allowed` keys, each once, and no control character in
    /// any string: anything else is a 422 that names the key.
    func strictObject(_ bytes: [UInt8], allowed: [String]) throws -> JSONValue {
        guard let body = JSONValue.parse(bytes), case .object(let pairs) = body else {
            throw Refusal(status: 400, code: "invalid_json", message: "the body must be a JSON object like {\"service\":\"web\",\"version\":\"v42\"}")
        }
        var seen: Set<String> = []
        for key in JSONObjectKeys.topLevel(bytes) ?? [] where !seen.insert(key).inserted {
            throw Refusal(status: 422, code: "duplicate_key", message: "\(key) is given twice")
        }
        for (key, value) in pairs {
            guard allowed.contains(key) else {
                throw Refusal(status: 422, code: "unknown_key", message: "unknown key \(key) (known: \(allowed.joined(separator: ", ")))")
            }
            if let text = value.string, hasControlCharacter(text) {
                throw Refusal(status: 422, code: "invalid_field", message: "\(key) contains a control character")
            }
        }
        return body
    }
}

/// A token bucket per caller for writes: `burst` at once, then `perSecond`.
package final class WriteRateLimiter: Sendable {
    let perSecond: Double
    let burst: Double
    private let buckets = Mutex<[String: (tokens: Double, at: Date)]>([:])

    package init(perSecond: Double, burst: Int) {
        self.perSecond = perSecond
        self.burst = Double(burst)
    }

    /// Nil when the write may go; else the whole seconds until it may.
    func take(_ caller: String, at now: Date) -> Int? {
        buckets.withLock { buckets in
            var bucket = buckets[caller] ?? (burst, now)
            bucket.tokens = min(burst, bucket.tokens + max(0, now.timeIntervalSince(bucket.at)) * perSecond)
            bucket.at = now
            defer { buckets[caller] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return max(1, Int(((1 - bucket.tokens) / perSecond).rounded(.up)))
        }
    }
}
