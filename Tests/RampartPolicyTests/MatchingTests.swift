import RampartPolicy
import Testing

@Suite("string, path and IP matching")
struct MatchingTests {
    @Test("matches exact, prefix, suffix and presence patterns", arguments: [
        ("abc", "abc", true), ("abc", "abcd", false), ("abc*", "abcd", true), ("abc*", "abc", true),
        ("*abc", "xabc", true), ("*abc", "abcx", false), ("*", "anything", true), ("*", "", false),
    ])
    func stringForms(pattern: String, value: String, expected: Bool) {
        #expect(StringMatcher(pattern).matches(value) == expected)
    }

    @Test("compares UTF-8 bytes, as Envoy does, not canonically equivalent text")
    func byteComparison() {
        let composed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        #expect(composed == decomposed)
        #expect(!StringMatcher(composed).matches(decomposed))
        #expect(StringMatcher(composed).matches(composed))
        #expect(StringMatcher("caf*").matches(decomposed))
        #expect(StringMatcher("*\u{301}").matches(decomposed) && !StringMatcher("*\u{301}").matches(composed))
    }

    @Test("compares hosts without regard to case")
    func hostsIgnoreCase() {
        #expect(StringMatcher("*.Suffix.b.com", ignoreCase: true).matches("deny.suffix.b.com"))
        #expect(StringMatcher("prefix.b.*", ignoreCase: true).matches("prefix.b.com"))
    }

    @Test("normalizes paths as Istio's BASE option does", arguments: [
        ("/allow?param=value", "/allow"), ("/public/../private", "/private"), ("/public/%2E%2E/private", "/private"),
        ("/public/%2e/%2e%2e/private", "/private"), ("/a\\b", "/a/b"), ("/store//cart", "/store//cart"),
        ("/a/%2Fb", "/a/%2Fb"), ("/a/%7e", "/a/~"), ("/a/./b/", "/a/b/"), ("/..", "/"), ("/plain", "/plain"),
        ("/?q=1", "/"), ("/a/b#frag", "/a/b"), ("/a/b?x=/../c", "/a/b"), ("/a/../b?x=1", "/b"), ("a/b", "/a/b"),
        ("/api/v1/orders?page=2&limit=50", "/api/v1/orders"), ("/a.b/.c", "/a.b/.c"),
        // Kept escapes keep their case; unreserved ones are decoded whatever their case.
        ("/a%2fb", "/a%2fb"), ("/a%2Fb", "/a%2Fb"), ("/caf%c3%a9", "/caf%c3%a9"), ("/%61dmin", "/admin"),
        ("/public/%2e%2E%2fadmin", "/public/..%2fadmin"), ("/a%3fb", "/a%3fb"), ("/%7E%7e", "/~~"),
        // Characters a canonical path does not hold raw are escaped, with upper-case hex.
        ("/café", "/caf%C3%A9"), ("/a b", "/a%20b"), ("/a{b}", "/a%7Bb%7D"), ("/a|b^c`d", "/a%7Cb%5Ec%60d"),
        ("/q\"<>", "/q%22%3C%3E"), ("/[x]", "/[x]"), ("/a*b;c=d@e:f!$&'()+,", "/a*b;c=d@e:f!$&'()+,"),
        // Invalid escapes pass through; a stray % never turns into an escape it was not.
        ("/a%zz", "/a%zz"), ("/a%", "/a%"), ("/a%%30", "/a%0"), ("/a%%300", "/a%2500"), ("/%%%30%30", "/%%2500"),
        // Dots written as escapes, backslashes as slashes, and `..` never above the root.
        ("/a/%2e%2e/b", "/b"), ("/a\\..\\b", "/b"), ("/a/..", "/"), ("/a/b/..", "/a/"), ("//..", "/"),
        ("/a/.../b", "/a/.../b"), ("/a/..b/c", "/a/..b/c"), ("", "/"), ("\\a", "/a"),
        // A stray % that a `..` cuts away no longer guards the escapes after it (googleurl's
        // url_canon_unittest.cc: `/5%\../>%41` is `/%3EA`).
        ("/5%\\../>%41", "/%3EA"), ("/a%/../bcd%30%30", "/bcd00"), ("/abc%/../xyz%30%300", "/xyz000"),
        // The parameters of `.` and `..` segments are dropped first, as current Envoy does
        // (path_utility_test.cc, StripDotSegmentWithParameters); other parameters stay.
        ("/..;/admin", "/admin"), ("/xyz/..;foo=bar/abc", "/abc"), ("/..;foo=bar/abc", "/abc"), ("/xyz/..;foo=bar", "/"),
        ("/xyz/.;foo=bar/abc", "/xyz/abc"), ("/xyz/.;foo=bar", "/xyz/"),
        ("/xyz/..;foo=bar/.;fff=zzz/remain;blah-bluh?query", "/remain;blah-bluh"), ("/admin;a=b", "/admin;a=b"),
        ("/;/admin", "/;/admin"), ("/a.;b/c", "/a.;b/c"), ("/a?x=/..;/b", "/a"),
    ])
    func normalization(raw: String, normalized: String) {
        #expect(PathNormalizer.normalize(raw) == normalized)
    }

    @Test("matches {*} against one non-empty segment and {**} against anything", arguments: [
        ("/allow/admin/{**}", "/allow/admin/", true), ("/allow/admin/{**}", "/allow/admin", false),
        ("/foo/{*}/bar/{**}", "/foo/buzz/bar/bat.txt", true), ("/foo/{*}/bar/{**}", "/foo//bar/bat.txt", false),
        ("/store/{**}/cart", "/store//cart", true), ("/store/{**}/cart", "/store/cart", false),
        ("/foo/{*}/bar/{**}", "/foo/a*b/bar/z", false), ("/foo/{*}", "/foo/a[b]", false),
        ("/foo/{*}", "/foo/a%2Fb;v=1@x", true), ("/foo/{**}", "/foo/a/b/c*", false), ("/foo/{**}", "/foo/a/b/c~", true),
        ("/store/{**}/cart", "/store/a/b/cart", true),
    ])
    func templates(template: String, path: String, expected: Bool) {
        #expect(PathTemplate(template).matches(path) == expected)
    }

    @Test("matches IPv4 and IPv6 addresses against blocks")
    func ipBlocks() throws {
        let block = try #require(IPBlock("192.168.4.0/23"))
        #expect(block.contains(try #require(IPAddress("192.168.5.233"))))
        #expect(!block.contains(try #require(IPAddress("192.168.6.1"))))
        let v6 = try #require(IPBlock("2001:db8::/32"))
        #expect(v6.contains(try #require(IPAddress("2001:db8:1::5"))))
        #expect(!v6.contains(try #require(IPAddress("10.0.0.1"))))
        #expect(IPBlock("a.b.c.d") == nil)
        #expect(IPBlock("10.0.0.0/33") == nil)
    }
}
