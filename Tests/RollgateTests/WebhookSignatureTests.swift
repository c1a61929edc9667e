@testable import Configuration
@testable import HTTPAPI
@testable import Integrations
@testable import WireFormat
import Foundation
import Testing

/// The providers' own documented examples (see Fixtures/github/PROVENANCE.md), then forged,
/// stale and malformed variants.
@Suite struct WebhookSignatureTests {
    @Test func githubsDocumentedExample() {
        let body = Array("Hello, World!".utf8)
        let secret = "It's a Secret to Everybody"
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        #expect(WebhookSignature.github(body: body, header: header, secret: secret) == nil)
        #expect(WebhookSignature.github(body: body + [33], header: header, secret: secret) == .mismatch, "a changed body")
        #expect(WebhookSignature.github(body: body, header: header, secret: "another secret") == .mismatch)
        #expect(WebhookSignature.github(body: body, header: nil, secret: secret) == .missing("X-Hub-Signature-256"))
        #expect(WebhookSignature.github(body: body, header: "sha1=757107ea", secret: secret) == .malformed("X-Hub-Signature-256 (expected sha256=HEX)"))
        #expect(WebhookSignature.github(body: body, header: "sha256=zz", secret: secret) != nil)
        #expect(WebhookSignature.github(body: body, header: "sha256=757107ea", secret: secret) == .mismatch, "a prefix is not the signature")
    }

    static let slackBody = Array("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c".utf8)

    @Test func slacksDocumentedExample() {
        let secret = "8f742231b10e8888abcd99yyyzzz85a5"
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        let signedAt = Date(timeIntervalSince1970: 1_531_420_618)
        #expect(WebhookSignature.slack(body: Self.slackBody, timestamp: "1531420618", signature: signature, secret: secret,
                                       now: signedAt.addingTimeInterval(299)) == nil)
        #expect(WebhookSignature.slack(body: Self.slackBody, timestamp: "1531420618", signature: signature, secret: secret,
                                       now: signedAt.addingTimeInterval(301)) == .stale(seconds: 301), "older than 5 minutes")
        #expect(WebhookSignature.slack(body: Self.slackBody, timestamp: "1531420619", signature: signature, secret: secret,
                                       now: signedAt) == .mismatch, "the timestamp is signed too")
        #expect(WebhookSignature.slack(body: Self.slackBody, timestamp: nil, signature: signature, secret: secret, now: signedAt)
                == .missing("X-Slack-Request-Timestamp"))
        #expect(WebhookSignature.slack(body: Self.slackBody, timestamp: "soon", signature: signature, secret: secret, now: signedAt)
                == .malformed("X-Slack-Request-Timestamp (expected 1-12 digits)"))
    }

    @Test func theStandardWebhooksTestVector() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let body = Array(#"{"test": 2432232314}"#.utf8)
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
        let signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        let signedAt = Date(timeIntervalSince1970: 1_614_265_330)
        #expect(WebhookSignature.standardHeader(body: body, id: id, timestamp: 1_614_265_330, secret: secret) == signature)
        #expect(WebhookSignature.standard(body: body, id: id, timestamp: "1614265330", signatures: signature, secret: secret, now: signedAt) == nil)
        #expect(WebhookSignature.standard(body: body, id: id, timestamp: "1614265330", signatures: "v1,bm9wZQ== " + signature,
                                          secret: secret, now: signedAt) == nil, "one of several signatures matches (key rotation)")
        #expect(WebhookSignature.standard(body: body, id: "msg_other", timestamp: "1614265330", signatures: signature,
                                          secret: secret, now: signedAt) == .mismatch, "the id is signed")
        #expect(WebhookSignature.standard(body: body, id: id, timestamp: "1614265330", signatures: signature, secret: secret,
                                          now: signedAt.addingTimeInterval(-301)) == .stale(seconds: -301), "from the future")
        #expect(WebhookSignature.standard(body: body, id: id, timestamp: "1614265330", signatures: "v2," + signature.dropFirst(3),
                                          secret: secret, now: signedAt) == .mismatch, "only v1 is understood")
        #expect(WebhookSignature.standard(body: body, id: nil, timestamp: "1614265330", signatures: signature, secret: secret, now: signedAt)
                == .missing("webhook-id"))
    }

    @Test func slackFormBodiesAndCommandsAreRead() throws {
        let form = FormBody.parse(Self.slackBody)
        #expect(form["user_name"] == "roadrunner")
        #expect(form["command"] == "/webhook-collect")
        #expect(form["response_url"] == "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN")
        #expect(form["text"] == "")
        #expect(FormBody.parse(Array("text=web+v42+hot%20fix".utf8))["text"] == "web v42 hot fix")
        #expect(try SlackCommand(text: "") == .help)
        #expect(try SlackCommand(text: "web v42 hot fix for #12") == .deploy(service: "web", version: "v42", reason: "hot fix for #12"))
        #expect(try SlackCommand(text: "web v42") == .deploy(service: "web", version: "v42", reason: nil))
        #expect(try SlackCommand(text: "status") == .status(service: nil))
        #expect(try SlackCommand(text: "status web") == .status(service: "web"))
        #expect(try SlackCommand(text: "cancel 17") == .cancel(17))
        #expect(try SlackCommand(text: "promote 17") == .promote(17))
        #expect(throws: SlackCommand.UsageError.self) { try SlackCommand(text: "promote") }
        #expect(try SlackCommand(text: "lock web quarter close") == .lock(service: "web", reason: "quarter close"))
        #expect(try SlackCommand(text: "unlock web") == .unlock(service: "web"))
        #expect(throws: SlackCommand.UsageError.self) { try SlackCommand(text: "web") }
        #expect(throws: SlackCommand.UsageError.self) { try SlackCommand(text: "cancel seven") }
        #expect(throws: SlackCommand.UsageError.self) { try SlackCommand(text: "lock web") }
    }

    @Test func duplicateKeysAreSeenAsWritten() {
        #expect(JSONObjectKeys.topLevel(Array(#"{"a":1,"b":{"a":2},"c":[{"a":3}],"a":4}"#.utf8)) == ["a", "b", "c", "a"])
        #expect(JSONObjectKeys.topLevel(Array(#"{"s\"x":"v,\"a\":1"}"#.utf8)) == ["s\"x"])
    }
}
