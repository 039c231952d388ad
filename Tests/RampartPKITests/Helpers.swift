import Crypto
import Foundation
import RampartIdentity
import RampartPKI
import Testing
import X509

/// A fresh directory under the system temporary directory; call `remove()` in a `defer`.
struct TemporaryDirectory {
    let path: String

    init(_ label: String = "pki") throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("rampart-\(label)-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    /// The path of `name` inside the directory.
    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Writes `contents` to `name` inside the directory and returns its path.
    @discardableResult
    func write(_ contents: String, to name: String) throws -> String {
        let target = file(name)
        try contents.write(toFile: target, atomically: true, encoding: .utf8)
        return target
    }

    /// Reads `name` inside the directory as UTF-8.
    func read(_ name: String) throws -> String {
        try String(contentsOfFile: file(name), encoding: .utf8)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A command that exited with a non-zero status.
struct ProcessFailure: Error, CustomStringConvertible {
    let command: String
    let status: Int32
    let output: String
    var description: String { "\(command) exited with \(status): \(output)" }
}

/// Runs a program to completion and returns its exit status and combined stdout and stderr.
func runProcess(_ executable: String, _ arguments: [String], in directory: String? = nil) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

let opensslPath = "/usr/bin/openssl"

/// Runs `/usr/bin/openssl` with `arguments` and returns its status and output.
func openssl(_ arguments: [String], in directory: String? = nil) throws -> (status: Int32, output: String) {
    try runProcess(opensslPath, arguments, in: directory)
}

/// Runs `/usr/bin/openssl` and throws unless it exits 0.
@discardableResult
func requireOpenSSL(_ arguments: [String], in directory: String? = nil) throws -> String {
    let result = try openssl(arguments, in: directory)
    guard result.status == 0 else {
        throw ProcessFailure(command: "openssl " + arguments.joined(separator: " "), status: result.status, output: result.output)
    }
    return result.output
}

/// Has openssl generate a new key and a CSR for it in `directory`; returns the CSR's PEM.
///
/// `keyOptions` are the `-newkey` options (for instance `["-newkey", "rsa:2048"]`), `extra` any further
/// `openssl req` options (`-addext`, `-sigopt`). The key is written to `<name>.key`, the CSR to `<name>.csr`.
func opensslCSR(in directory: TemporaryDirectory, name: String = "request", keyOptions: [String], extra: [String] = []) throws -> String {
    try requireOpenSSL(
        ["req", "-new"] + keyOptions + ["-nodes", "-subj", "/", "-keyout", directory.file("\(name).key"), "-out", directory.file("\(name).csr")]
            + extra
    )
    return try directory.read("\(name).csr")
}

/// The public key of a private key file written by openssl.
func opensslPublicKey(ofKeyFile path: String) throws -> Certificate.PublicKey {
    try Certificate.PublicKey(pemEncoded: try requireOpenSSL(["pkey", "-in", path, "-pubout"]))
}

/// The `-newkey` options for openssl for each key shape the tests use.
enum OpenSSLKey {
    static let ecP256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    static let ecP384 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]
    static let ecP521 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"]
    static let rsa1024 = ["-newkey", "rsa:1024"]
    static let rsa2048 = ["-newkey", "rsa:2048"]
    static let rsa3072 = ["-newkey", "rsa:3072"]
}

/// The DER bytes inside the first PEM block of `pem`.
func derBytes(fromPEM pem: String) throws -> [UInt8] {
    let body = pem.split(whereSeparator: \.isNewline)
        .map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty && !$0.hasPrefix("-----") }
        .joined()
    let data = try #require(Data(base64Encoded: body), "PEM body is not base64")
    return Array(data)
}

/// PEM-encodes `der` under `label` (such as `CERTIFICATE REQUEST`).
func pemEncode(_ der: [UInt8], label: String) -> String {
    let body = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
    return "-----BEGIN \(label)-----\n\(body)\n-----END \(label)-----\n"
}

/// PEM of a certificate, newline-terminated.
func pem(_ certificate: Certificate) throws -> String {
    try certificate.serializeAsPEM().pemString + "\n"
}

/// PEM of a private key, newline-terminated.
func pem(_ key: Certificate.PrivateKey) throws -> String {
    try key.serializeAsPEM().pemString + "\n"
}

/// The current time truncated to whole seconds, since certificates carry whole seconds.
func wholeSecondNow() -> Date {
    Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
}

/// Lowercase hex, computed independently of the code under test.
func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

/// The signature algorithm a test CA uses for its own key.
func signatureAlgorithm(for key: Certificate.PrivateKey) -> Certificate.SignatureAlgorithm {
    switch KeyAlgorithm.classify(key.publicKey) {
    case .success(.ecP384): return .ecdsaWithSHA384
    case .success(let algorithm) where algorithm.isRSA: return .sha256WithRSAEncryption
    default: return .ecdsaWithSHA256
    }
}

/// A CA certificate and its key, made by the tests rather than by `CAMaterial`.
struct TestCA {
    let certificate: Certificate
    let key: Certificate.PrivateKey
}

/// Signs a certificate for a fresh key with `issuer`; a CA (CA:true, keyCertSign) unless `isCA` is false.
func makeSubordinate(
    issuer: TestCA,
    commonName: String = "Rampart test intermediate CA",
    keyAlgorithm: KeyAlgorithm = .ecP256,
    notBefore: Date,
    notAfter: Date,
    isCA: Bool = true,
    uris: [String] = []
) throws -> TestCA {
    let key = try keyAlgorithm.generate()
    let subject = try DistinguishedName {
        OrganizationName("cluster.local")
        CommonName(commonName)
    }
    let issuerKeyID = try issuer.certificate.extensions.subjectKeyIdentifier?.keyIdentifier
        ?? SubjectKeyIdentifier(hash: issuer.certificate.publicKey).keyIdentifier
    let extensions = try Certificate.Extensions {
        if isCA {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
        } else {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
        }
        SubjectKeyIdentifier(hash: key.publicKey)
        AuthorityKeyIdentifier(keyIdentifier: issuerKeyID)
        if !uris.isEmpty {
            SubjectAlternativeNames(uris.map { .uniformResourceIdentifier($0) })
        }
    }
    let certificate = try Certificate(
        version: .v3,
        serialNumber: Certificate.SerialNumber(),
        publicKey: key.publicKey,
        notValidBefore: notBefore,
        notValidAfter: notAfter,
        issuer: issuer.certificate.subject,
        subject: subject,
        signatureAlgorithm: signatureAlgorithm(for: issuer.key),
        extensions: extensions,
        issuerPrivateKey: issuer.key
    )
    return TestCA(certificate: certificate, key: key)
}

/// Writes the four files of Istio's plug-in layout by hand (not through `CAMaterial.write`).
func writePlugInLayout(in directory: TemporaryDirectory, caCert: [Certificate], caKey: Certificate.PrivateKey, chain: [Certificate], roots: [Certificate]) throws {
    try directory.write(try caCert.map(pem).joined(), to: CAMaterial.FileName.caCert)
    try directory.write(try pem(caKey), to: CAMaterial.FileName.caKey)
    try directory.write(try chain.map(pem).joined(), to: CAMaterial.FileName.certChain)
    try directory.write(try roots.map(pem).joined(), to: CAMaterial.FileName.rootCert)
}

/// Asserts that `body` throws a `PKIError` with `code`, and returns the error for further checks.
@discardableResult
func expectPKIError(
    _ code: PKIError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async -> PKIError? {
    do {
        try await body()
        Issue.record("expected PKIError \(code), but nothing was thrown", sourceLocation: sourceLocation)
        return nil
    } catch let error as PKIError {
        #expect(error.code == code, "expected \(code), got \(error.code): \(error.reason)", sourceLocation: sourceLocation)
        #expect(!error.reason.isEmpty, sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected PKIError \(code), got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

let cartIdentity = "spiffe://cluster.local/ns/shop/sa/cart"

func cartID() throws -> SPIFFEID {
    try SPIFFEID(parsing: cartIdentity)
}
