import Configuration
import Integrations
import WireFormat
import MicroHTTP
import Rollout
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Locks, and the targets rollgate left out: put one back, or forget one that is gone.
extension API {
    /// `POST /api/v1/services/{name}/lock` `{"reason", "expires_in"?}`: deploys are refused
    /// (423) until unlocked or expired; `expires_in` is a duration (`2h`) or seconds.
    func lock(_ request: HTTPRequest) async throws -> HTTPResponse {
        let who = try authorize(request)
        let service = request.parameters["name"] ?? ""
        try knownService(service)
        let body = try object(request)
        guard let reason = try field(body, "reason", required: true), reason.utf8.count <= 1000 else {
            throw Refusal(status: 422, code: "invalid_reason", message: "reason is required, at most 1000 bytes")
        }
        var expiresAt: Date?
        if let value = body["expires_in"], !value.isNull {
            let duration: Duration?
            switch value {
            case .string(let text): duration = DurationText.parse(text)
            case .number(let seconds) where seconds > 0 && seconds <= 366 * 86_400: duration = .seconds(seconds)
            default: duration = nil
            }
            guard let duration, duration > .zero else {
                throw Refusal(status: 422, code: "invalid_expires_in", message: "expires_in must be a duration like 30m or 2h, or a number of seconds")
            }
            expiresAt = clock.now.adding(duration)
        }
        // Someone else's lock is replaced (its reason and expiry lost) only when asked to.
        let now = clock.now
        if try !flag(body, "force"), let held = try await read({ try $0.lock(service: service, at: now) }), held.lockedBy != who {
            throw Refusal(status: 409, code: "locked_by_other",
                          message: "\(service) is locked by \(held.lockedBy): \(held.reason)"
                            + (held.expiresAt.map { " (until \(Timestamp.format($0)))" } ?? ""),
                          hint: "pass \"force\": true to replace that lock")
        }
        let lock = try await requests.lock(service: service, reason: reason, by: who, expiresAt: expiresAt, at: clock.now)
        logger.info("service locked", metadata: ["service": "\(service)", "by": "\(who)"])
        return .json(200, JSONWriter.bytes { $0.lock(lock) })
    }

    /// `DELETE /api/v1/services/{name}/lock`; queued deploys that waited for it go on.
    func unlock(_ request: HTTPRequest) async throws -> HTTPResponse {
        let who = try authorize(request)
        let service = request.parameters["name"] ?? ""
        try knownService(service)
        guard let lock = try await requests.unlock(service: service, at: clock.now) else {
            throw Refusal(status: 404, code: "not_locked", message: "\(service) is not locked")
        }
        logger.info("service unlocked", metadata: ["service": "\(service)", "by": "\(who)"])
        wakeDispatcher()
        return .json(200, JSONWriter.bytes { w in
            w.object { w in
                w.key("unlocked"); w.lock(lock)
                w.key("unlocked_by"); w.string(who)
            }
        })
    }

    /// `POST .../targets/{target}/restore`: queues a run that registers the left-out target
    /// and waits until it is healthy, without hooks (for a target the operator fixed by hand).
    func restore(_ request: HTTPRequest) async throws -> HTTPResponse {
        let who = try authorize(request)
        let (service, left) = try await leftOutTarget(request)
        let leftBy = left.runID
        let version = try await read({ try $0.run(leftBy)?.version }) ?? "unknown"
        let reason = "restore \(left.target.id) (left out by run \(left.runID): \(left.reason))"
        guard case .created(let run, _) = try await requests.enqueue(service: service, version: version, reason: String(reason.prefix(1000)),
                                                                     requestedBy: who, idempotencyKey: nil,
                                                                     kind: .restore(left.target), waitForLock: false, rollbackFrom: nil, at: clock.now) else {
            throw Refusal(status: 409, code: "not_queued", message: "the restore could not be queued")
        }
        wakeDispatcher()
        var response = HTTPResponse.json(202, JSONWriter.bytes { $0.run(run, publicURL: config.publicURL) })
        response.headers.append(("Location", "/api/v1/runs/\(run.id)"))
        return response
    }

    /// `POST .../targets/{target}/forget` `{"reason"?}`: the instance is gone for good; rollgate
    /// stops counting it, and records who and why (a `target_forgotten` event and a line in the
    /// log of the run that left it out). Refused while a run of the service is rolling.
    func forget(_ request: HTTPRequest) async throws -> HTTPResponse {
        let who = try authorize(request)
        let (service, left) = try await leftOutTarget(request)
        // Why (optional, recorded with who): `{"reason": "instance terminated"}`.
        let body = request.body.isEmpty ? JSONValue.object([]) : try strictObject(request.body, allowed: ["reason"])
        let reason = try field(body, "reason", required: false).flatMap { $0.isEmpty ? nil : $0 }
        if let reason, reason.utf8.count > 1000 { throw Refusal(status: 422, code: "invalid_reason", message: "reason is longer than 1000 bytes") }
        let result: LeftOutTarget?
        do {
            result = try await requests.forget(service: service, targetID: left.target.id, by: who, reason: reason, at: clock.now)
        } catch let rolling as ServiceRolling {
            throw Refusal(status: 409, code: "service_rolling",
                          message: "run \(rolling.run) of \(service) is rolling; forget \(left.target.id) once it has ended")
        }
        guard let forgotten = result else {
            throw Refusal(status: 404, code: "not_left_out", message: "\(left.target.id) is not left out in \(service)")
        }
        logger.info("left-out target forgotten", metadata: ["service": "\(service)", "target.id": "\(left.target.id)", "by": "\(who)"])
        return .json(200, JSONWriter.bytes { w in
            w.object { w in
                w.key("forgotten"); w.leftOut(forgotten)
                w.key("forgotten_by"); w.string(who)
                w.key("reason"); w.string(reason)
            }
        })
    }

    private func leftOutTarget(_ request: HTTPRequest) async throws -> (String, LeftOutTarget) {
        let service = request.parameters["name"] ?? ""
        try knownService(service)
        let id = request.parameters["target"] ?? ""
        let leftOut = try await read { try $0.leftOut(service: service) }
        // The id, or `ID:PORT` as `rollgate status` prints it.
        guard let left = leftOut.first(where: { $0.target.id == id || "\($0.target.id):\($0.target.port)" == id }) else {
            let known = leftOut.isEmpty ? "none is" : leftOut.map(\.target.id).joined(separator: ", ") + " are"
            throw Refusal(status: 404, code: "not_left_out", message: "\(id) is not left out in \(service) (\(known))")
        }
        return (service, left)
    }

    func object(_ request: HTTPRequest) throws -> JSONValue {
        guard let body = JSONValue.parse(request.body), case .object = body else {
            throw Refusal(status: 400, code: "invalid_json", message: "the body must be a JSON object")
        }
        return body
    }
}
