@testable import Configuration
@testable import HTTPAPI
@testable import Hooks
@testable import Integrations
@testable import WireFormat
import Foundation
import Testing
@testable import RollgateServer
import Rollout

/// Who holds a lease, across hosts, boots, containers and recycled pids.
@Suite struct ProcessIdentityTests {
    @Test func anOwnerIsWrittenAndReadBackWholeAndOldOwnersStillRead() throws {
        let owner = LeaseOwner(host: "web/1", pid: 42, start: 7, instance: "a1b2", boot: "b00t", pidNamespace: "pid:[4026531836]")
        #expect(LeaseOwner(owner.text) == owner)
        #expect(LeaseOwner("host-a/42/7") == LeaseOwner(host: "host-a", pid: 42, start: 7), "an owner written before this release")
        #expect(LeaseOwner("nonsense") == nil)
    }

    @Test func twoContainersAlikeInHostPidAndStartAreTwoOwners() {
        let first = LeaseOwner(host: "node-1", pid: 1, start: 100, instance: "aaaa", boot: "b", pidNamespace: "pid:[1]")
        let second = LeaseOwner(host: "node-1", pid: 1, start: 100, instance: "bbbb", boot: "b", pidNamespace: "pid:[2]")
        #expect(first != second && first.text != second.text, "a lease held by one is never the other's")
        #expect(!first.sharesProcessTable(with: second), "another pid namespace: its pid means nothing here")
    }

    @Test func livenessIsReadFromProcOnlyInTheSameNamespaceOfTheSameBoot() {
        let identity = ProcessIdentity()
        let me = identity.current
        #expect(!me.instance.isEmpty && !me.boot.isEmpty && me.pidNamespace.hasPrefix("pid:["), "\(me.text)")
        #expect(!identity.isGone(me), "this process is alive")
        var recycled = me
        recycled.start += 1
        #expect(identity.isGone(recycled), "the same pid with another start time is another process: the holder is gone")
        // Alike in host, pid and start, but counted in another pid namespace (a container
        // with the host's hostname): this /proc cannot tell, so only the lease's expiry frees it.
        var elsewhere = recycled
        elsewhere.pidNamespace = "pid:[1]"
        #expect(!identity.isGone(elsewhere))
        var otherBoot = recycled
        otherBoot.boot = "another-boot"
        #expect(!identity.isGone(otherBoot))
        #expect(!identity.isGone(LeaseOwner(host: me.host, pid: 999_999, start: 1)), "an owner without namespace and boot: expiry decides")
    }
}
