import Crypto
import Foundation
import JWTKit
import RampartAuthn
import RampartIdentity
import Testing

/// A fresh directory under the system temporary directory; call `remove()` in a `defer`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("rampart-authn-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    @discardableResult
    func write(_ contents: String, to name: String) throws -> String {
        let target = file(name)
        try contents.write(toFile: target, atomically: true, encoding: .utf8)
        return target
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// The claims of a Kubernetes-style service-account token; every claim can be left out.
struct TestClaims: JWTPayload {
    var iss: IssuerClaim?
    var sub: SubjectClaim?
    var aud: AudienceClaim?
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var iat: IssuedAtClaim?

    func verify(using algorithm: some JWTAlgorithm) throws {}
}

/// Base64url without padding, as JOSE uses.
func base64URL(_ bytes: some Sequence<UInt8>) -> String {
    Data(bytes).base64EncodedString()
        .replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_")
        .replacingOccurrences(of: "=", with: "")
}

/// Decodes base64url with or without padding.
func base64URLDecode(_ text: some StringProtocol) -> [UInt8]? {
    var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while base64.count % 4 != 0 { base64 += "=" }
    return Data(base64Encoded: base64).map(Array.init)
}

/// An ES256 signing key of a test issuer, with its kid.
struct IssuerKey {
    let kid: String
    let privateKey: P256.Signing.PrivateKey

    init(kid: String) {
        self.kid = kid
        self.privateKey = P256.Signing.PrivateKey()
    }

    /// The public key as a JWK, built from the raw x and y coordinates.
    var jwk: [String: String] {
        let point = Array(privateKey.publicKey.x963Representation)  // 0x04 || x || y
        return [
            "kty": "EC", "crv": "P-256",
            "x": base64URL(point[1...32]), "y": base64URL(point[33...64]),
            "kid": kid, "alg": "ES256", "use": "sig",
        ]
    }

    /// Signs `claims` with this key, naming `headerKid` (by default this key's kid) in the header.
    func sign(_ claims: TestClaims, headerKid: String? = nil) async throws -> String {
        let keys = JWTKeyCollection()
        let kid = JWKIdentifier(string: headerKid ?? self.kid)
        await keys.add(ecdsa: try ES256PrivateKey(backing: privateKey), kid: kid)
        return try await keys.sign(claims, kid: kid)
    }

    /// Signs `claims` with extra header fields (such as `crit`) beside the kid.
    func sign(_ claims: TestClaims, header fields: [String: JWTHeaderField]) async throws -> String {
        let keys = JWTKeyCollection()
        let kid = JWKIdentifier(string: kid)
        await keys.add(ecdsa: try ES256PrivateKey(backing: privateKey), kid: kid)
        return try await keys.sign(claims, kid: kid, header: JWTHeader(fields: fields))
    }

    /// Signs `claims` with no kid in the header.
    func signWithoutKid(_ claims: TestClaims) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(ecdsa: try ES256PrivateKey(backing: privateKey))
        return try await keys.sign(claims)
    }
}

/// Writes a JWKS document holding `keys` to `name` in `directory` and returns its path.
@discardableResult
func writeJWKS(_ keys: [[String: String]], to directory: TemporaryDirectory, name: String = "jwks.json") throws -> String {
    let data = try JSONSerialization.data(withJSONObject: ["keys": keys], options: [.sortedKeys])
    return try directory.write(String(decoding: data, as: UTF8.self), to: name)
}

let trustedIssuer = "https://kubernetes.default.svc.cluster.local"

/// Claims that the authenticator accepts at `now`; tests change one thing at a time.
func validClaims(now: Date, issuer: String = trustedIssuer, subject: String = "system:serviceaccount:shop:cart") -> TestClaims {
    TestClaims(
        iss: IssuerClaim(value: issuer),
        sub: SubjectClaim(value: subject),
        aud: AudienceClaim(value: ["istio-ca"]),
        exp: ExpirationClaim(value: now.addingTimeInterval(600)),
        nbf: NotBeforeClaim(value: now.addingTimeInterval(-60)),
        iat: IssuedAtClaim(value: now.addingTimeInterval(-60))
    )
}

/// Asserts that authenticating `token` fails with `code`.
func expectAuthnError(
    _ code: AuthnError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async {
    do {
        try await body()
        Issue.record("expected AuthnError \(code), but the token was accepted", sourceLocation: sourceLocation)
    } catch let error as AuthnError {
        #expect(error.code == code, "expected \(code), got \(error.code): \(error.reason)", sourceLocation: sourceLocation)
        #expect(!error.reason.isEmpty, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected AuthnError \(code), got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
}

/// Runs a program found on PATH and returns its status and combined output.
func runOnPath(_ program: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [program] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// Whether Python's joserfc can be imported (scripts/install-deps.sh --test installs it).
let joserfcAvailable: Bool = (try? runOnPath("python3", ["-c", "import joserfc"]).status == 0) ?? false

/// An RS256 key of a test issuer, generated by openssl, with its kid.
struct RSAIssuerKey {
    let kid: String
    let privateKey: JWTKit.Insecure.RSA.PrivateKey

    init(kid: String, in directory: TemporaryDirectory) throws {
        self.kid = kid
        let path = directory.file("\(kid)-\(UUID().uuidString).key")
        let result = try runOnPath("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path])
        try #require(result.status == 0, "openssl genpkey failed: \(result.output)")
        privateKey = try JWTKit.Insecure.RSA.PrivateKey(pem: try String(contentsOfFile: path, encoding: .utf8))
    }

    /// The public key as a JWK with `n` and `e`; `alg` is left out when `includeAlg` is false.
    func jwk(includeAlg: Bool = true) throws -> [String: String] {
        let (modulus, exponent) = try privateKey.publicKey.getKeyPrimitives()
        var jwk = ["kty": "RSA", "n": base64URL(modulus), "e": base64URL(exponent), "kid": kid, "use": "sig"]
        if includeAlg { jwk["alg"] = "RS256" }
        return jwk
    }

    /// Signs `claims` with RS256.
    func sign(_ claims: TestClaims) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(rsa: privateKey, digestAlgorithm: .sha256, kid: JWKIdentifier(string: kid))
        return try await keys.sign(claims, kid: JWKIdentifier(string: kid))
    }
}
