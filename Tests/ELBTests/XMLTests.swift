import Testing
@testable import ELB

@Suite struct XMLTests {
    @Test func parsesNestedElementsEntitiesAndIgnoresWhatItNeedsNot() throws {
        let root = try XMLDocument.parse("""
            <?xml version="1.0" encoding="UTF-8"?>
            <!-- a comment -->
            <a:Root xmlns:a="urn:x" attr='1>2'><Item>one &amp; two &lt;3&gt; &#233;&#x41;</Item><Empty/><Item><![CDATA[<raw>]]></Item></a:Root>
            """)
        #expect(root.name == "Root")
        #expect(root.children("Item").map(\.text) == ["one & two <3> éA", "<raw>"])
        #expect(root.child("Empty") == XMLElement(name: "Empty"))
    }

    @Test func refusesBrokenDocuments() {
        for broken in ["", "<a>", "<a></b>", "<a>&bogus;</a>", "text", "<a/><b/>"] {
            #expect(throws: XMLError.self, "\(broken)") { try XMLDocument.parse(broken) }
        }
    }
}
