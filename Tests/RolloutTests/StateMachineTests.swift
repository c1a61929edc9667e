import Testing
@testable import Rollout

@Suite struct StateMachineTests {
    /// Every (state, event) pair: the allowed ones and their result; everything else refused.
    @Test func runTransitionsOverEveryPair() throws {
        let allowed: [RunStatus: [RunEvent: RunStatus]] = [
            .queued: [.start: .running, .supersede: .superseded, .cancel: .cancelled, .fail: .failed],
            .running: [.succeed: .succeeded, .fail: .failed, .cancel: .cancelled],
        ]
        var checked = 0
        for status in RunStatus.allCases {
            for event in RunEvent.allCases {
                checked += 1
                if let expected = allowed[status]?[event] {
                    #expect(try status.applying(event) == expected, "\(status) + \(event)")
                } else {
                    #expect(throws: InvalidTransition(from: status.rawValue, event: event.rawValue)) {
                        try status.applying(event)
                    }
                }
            }
        }
        #expect(checked == RunStatus.allCases.count * RunEvent.allCases.count)
    }

    @Test func terminalRunStatesAreExactlyTheFinishedOnes() {
        #expect(RunStatus.allCases.filter(\.isTerminal) == [.succeeded, .failed, .cancelled, .superseded])
    }

    @Test func stepTransitionsOverEveryPair() throws {
        for status in StepStatus.allCases {
            for event in StepEvent.allCases {
                switch (status, event) {
                case (.running, .succeed): #expect(try status.applying(event) == .succeeded)
                case (.running, .fail): #expect(try status.applying(event) == .failed)
                default: #expect(throws: InvalidTransition.self) { try status.applying(event) }
                }
            }
        }
    }

    @Test func versionsAreCheckedBeforeTheyReachAHook() {
        for good in ["v42", "1.2.3", "release/2026-11-24", "abc+def_1", String(repeating: "a", count: 128), "0123abcdef"] {
            #expect(Version.isValid(good), "\(good)")
        }
        for bad in ["", "v 1", "v1;rm -rf /", "$(id)", "a`b`", "v1\n", "ü", String(repeating: "a", count: 129), "a\"b", "a'b"] {
            #expect(!Version.isValid(bad), "\(bad)")
        }
    }

    @Test func durationsPrintAsTheConfigWritesThem() {
        #expect(Duration.milliseconds(500).humanText == "500ms")
        #expect(Duration.seconds(30).humanText == "30s")
        #expect(Duration.seconds(600).humanText == "10m")
        #expect(Duration.seconds(90).humanText == "1m30s")
        #expect(Duration.seconds(7200).humanText == "2h")
    }
}
