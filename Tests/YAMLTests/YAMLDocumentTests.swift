import Testing
import YAML
import RolloutTesting

/// The YAML reader the config goes through: shapes, lines, null, quoting, anchors, errors.
@Suite struct YAMLDocumentTests {
    @Test func blockAndFlowShapesKeepOrderAndLines() throws {
        let text = """
        # a comment
        listen: 127.0.0.1:8080
        services:
          - name: web
            hooks: {deploy: ./deploy.sh, verify: "curl -f x"}
            hook_env: [A, B]
          - name: api
        """
        let root = try #require(try YAMLDocument.parse(text))
        let top = try #require(root.mapping)
        #expect(top.map { $0.key.scalar } == ["listen", "services"])
        #expect(top[0].key.line == 2)
        #expect(top[0].value.scalar == "127.0.0.1:8080")
        let services = try #require(top[1].value.sequence)
        #expect(services.count == 2)
        #expect(services[0].line == 4)
        #expect(services[1].line == 7)
        let web = try #require(services[0].mapping)
        #expect(web.map { $0.key.scalar } == ["name", "hooks", "hook_env"])
        let hooks = try #require(web[1].value.mapping)
        #expect(hooks.map { $0.value.scalar } == ["./deploy.sh", "curl -f x"])
        #expect(hooks[1].value.line == 5)
        #expect(web[2].value.sequence?.map(\.scalar) == ["A", "B"])
    }

    @Test func scalarsStayTextAsWritten() throws {
        let root = try #require(try YAMLDocument.parse("version: 1.10\nport: 0080\nflag: yes\nquoted: '1.10'\nblock: |\n  two\n  lines\n"))
        let values = try #require(root.mapping).map { $0.value.scalar }
        #expect(values == ["1.10", "0080", "yes", "1.10", "two\nlines\n"])
    }

    @Test func nullIsUnquotedEmptyTildeOrNullOrTaggedNull() throws {
        let root = try #require(try YAMLDocument.parse("""
        a:
        b: ~
        c: null
        d: NULL
        e: "null"
        f: ''
        g: !!null x
        h: !!str null
        """))
        let nulls = try #require(root.mapping).map { $0.value.isNull }
        #expect(nulls == [true, true, true, true, false, false, true, false])
        #expect(try #require(root.mapping)[7].value.tag == "tag:yaml.org,2002:str")
    }

    @Test func longListsAndDeepNestingKeepEveryItemInOrder() throws {
        let items = (0..<5_000).map { "  - {name: s\($0), tags: [a, b]}" }.joined(separator: "\n")
        let root = try #require(try YAMLDocument.parse("services:\n" + items + "\n"))
        let list = try #require(root.mapping?.first?.value.sequence)
        #expect(list.count == 5_000)
        #expect(list.map { $0.mapping?.first?.value.scalar } == (0..<5_000).map { "s\($0)" })
        #expect(list[4_999].line == 5_001)
        let deep = String(repeating: "[", count: 200) + "x" + String(repeating: "]", count: 200)
        var node = try #require(try YAMLDocument.parse(deep))
        for _ in 0..<200 { node = try #require(node.sequence?.first) }
        #expect(node.scalar == "x")
    }

    /// Mangled configs (bytes dropped, doubled, swapped for YAML's punctuation) either read
    /// or fail with a line inside the text: never a crash, never a line that isn't there.
    @Test func mangledTextReadsOrFailsWithALineInsideIt() {
        let valid = Array("""
        listen: 127.0.0.1:8080
        api_tokens:
          - {name: ci, token_env: CI_TOKEN, scopes: [deploy]}
        services:
          - name: web
            hooks: &h {deploy: "./deploy.sh", verify: './check.sh'}
            simulated: {targets: 3}
          - name: api
            hooks: *h
            hook_env: [A, B]
            notes: |
              two
              lines
        """.utf8)
        let punctuation = Array("-:{}[],&*!|>'\"#%@`? \t\n".utf8)
        var random = SeededRandom(seed: 42)
        var (read, failed) = (0, 0)
        for _ in 0..<3_000 {
            var bytes = valid
            for _ in 0..<(1 + random.next() % 4) {
                let at = Int(random.next() % UInt64(bytes.count))
                switch random.next() % 3 {
                case 0: bytes.remove(at: at)
                case 1: bytes.insert(bytes[at], at: at)
                default: bytes[at] = punctuation[Int(random.next() % UInt64(punctuation.count))]
                }
            }
            let lines = bytes.filter { $0 == 10 }.count + 1
            do {
                if let root = try YAMLDocument.parse(String(decoding: bytes, as: UTF8.self)) {
                    #expect(Self.lines(of: root).allSatisfy { (1...lines).contains($0) }, "\(Self.lines(of: root).max() ?? 0) of \(lines): \(String(decoding: bytes, as: UTF8.self).debugDescription)")
                }
                read += 1
            } catch {
                #expect((1...lines).contains(error.line), "\(error)")
                failed += 1
            }
        }
        #expect(read > 0 && failed > 0, "read \(read), failed \(failed)")
    }

    static func lines(of node: YAMLNode) -> [Int] {
        switch node.content {
        case .scalar: return [node.line]
        case .sequence(let items): return [node.line] + items.flatMap(lines)
        case .mapping(let pairs): return [node.line] + pairs.flatMap { lines(of: $0.key) + lines(of: $0.value) }
        }
    }

    @Test func anAliasIsACopyOfItsAnchor() throws {
        let root = try #require(try YAMLDocument.parse("base: &hooks {deploy: ./d.sh}\nother: *hooks\n"))
        let pairs = try #require(root.mapping)
        #expect(pairs[1].value.mapping?.first?.value.scalar == "./d.sh")
    }

    @Test func anAliasWithoutItsAnchorIsAnError() {
        #expect(throws: YAMLError(line: 1, column: 4, message: "alias *nowhere names no anchor (&nowhere) above it")) {
            try YAMLDocument.parse("a: *nowhere\n")
        }
    }

    @Test func emptyTextOrOnlyCommentsHoldsNoDocument() throws {
        #expect(try YAMLDocument.parse("") == nil)
        #expect(try YAMLDocument.parse("# nothing here\n\n") == nil)
    }

    @Test func malformedYAMLSaysWhereAndWhat() {
        do {
            _ = try YAMLDocument.parse("services: [\n  a,\n")
            Issue.record("an unclosed list parsed")
        } catch {
            #expect(error == YAMLError(line: 3, column: 1, message: "did not find expected node content (while parsing a flow node)"))
        }
        do {
            _ = try YAMLDocument.parse("hooks: {deploy: x\nname: web\n")
            Issue.record("an unclosed mapping parsed")
        } catch {
            #expect(error.line == 2)
            #expect(error.message.contains("while parsing a flow mapping on line 1"))
        }
        do {
            _ = try YAMLDocument.parse("a: b\n c: d\n")
            Issue.record("a mis-indented key parsed")
        } catch {
            #expect(error.line == 2)
        }
    }

    @Test func aSecondDocumentIsRefused() {
        #expect(throws: YAMLError.self) { try YAMLDocument.parse("a: 1\n---\nb: 2\n") }
        #expect((try? YAMLDocument.parse("---\na: 1\n...\n")) != nil)
    }

    @Test func unicodeAndEscapesComeThrough() throws {
        let root = try #require(try YAMLDocument.parse("name: \"caf\\u00e9 \\t\"\nplain: naïve ✓\n"))
        #expect(try #require(root.mapping).map { $0.value.scalar } == ["café \t", "naïve ✓"])
    }

    @Test func aByteOrderMarkAndWindowsLineEndingsAreRead() throws {
        let root = try #require(try YAMLDocument.parse("\u{FEFF}a: 1\r\nb:\r\n  - x\r\n"))
        let pairs = try #require(root.mapping)
        #expect(pairs.map { $0.key.scalar } == ["a", "b"])
        #expect(pairs[1].value.sequence?.first?.scalar == "x")
        #expect(pairs[1].value.sequence?.first?.line == 3)
    }

    @Test func invalidUTF8ArrivesRepairedAndIsRead() {
        let bytes: [UInt8] = Array("a: ".utf8) + [0xff, 0xfe] + Array("\n".utf8)
        let text = String(decoding: bytes, as: UTF8.self)  // Swift repairs to U+FFFD; still valid for libyaml
        #expect((try? YAMLDocument.parse(text))?.mapping?.first?.value.scalar == "\u{FFFD}\u{FFFD}")
    }
}

