import Crypto
import Foundation
import RampartControlPlane
import RampartIdentity
import RampartPKI
import RampartStore
import X509

/// The control plane's state and the two workloads' identities of `rampart bench proxy`.
///
/// The CA is made and the policy stored by this same executable's `rampart ca init` and
/// `rampart apply`, as an operator would. The identities are issued from the CA's files and
/// recorded in its store, and written in the node agent's layout (cert-chain.pem, key.pem with
/// mode 0600, root-cert.pem); for HAProxy, each certificate chain and key also go in one PEM file.
struct BenchMesh: Sendable {
    /// The namespace of both workloads.
    static let namespace = "bench"

    let executable: String
    let state: String
    let rootCert: String
    let identityA: String
    let identityB: String
    let haproxyPEMA: String
    let haproxyPEMB: String

    /// The ALLOW policy proxy B enforces: only A's identity may call it.
    static let policy = """
        apiVersion: security.istio.io/v1
        kind: AuthorizationPolicy
        metadata:
          name: b-from-a
          namespace: \(namespace)
        spec:
          selector:
            matchLabels:
              app: b
          action: ALLOW
          rules:
          - from:
            - source:
                principals: ["cluster.local/ns/\(namespace)/sa/a"]

        """

    /// Runs `rampart ca init` and `rampart apply`, then issues and writes both identities.
    static func prepare(directory: String, executable: String) async throws -> BenchMesh {
        let state = "\(directory)/ca"
        try await runToCompletion(name: "rampart ca init", file: "ca-init", arguments: [executable, "ca", "init", "--state", state], directory: directory)
        let policyPath = "\(directory)/policy.yaml"
        try policy.write(toFile: policyPath, atomically: true, encoding: .utf8)
        try await runToCompletion(name: "rampart apply", file: "apply", arguments: [executable, "apply", "-f", policyPath, "--state", state], directory: directory)

        let stateDirectory = StateDirectory(state)
        let now = Date()
        let authority = try await stateDirectory.loadAuthority(now: now)
        let issuer = try SVIDIssuer(authority: authority)
        let store = try stateDirectory.openStore()
        let rootsPEM = try authority.rootsPEM()
        var written: [(identity: String, haproxyPEM: String)] = []
        for workload in ["a", "b"] {
            let key = P256.Signing.PrivateKey()
            let id = try SPIFFEID.workload(trustDomain: try stateDirectory.loadConfig().parsedTrustDomain(), namespace: namespace, serviceAccount: workload)
            let issued = try await issuer.issue(publicKey: Certificate.PublicKey(key.publicKey), spiffeID: id, ttl: 24 * 3600, now: now)
            try await store.recordIssued([CertificateRecord(issued, issuedAt: now, callerIdentity: "admin", authMethod: .admin)], audit: [])
            // The agent's cert-chain.pem holds the leaf and any intermediates, not the root.
            let chain = issued.chainPEM.dropLast().map { $0.hasSuffix("\n") ? $0 : $0 + "\n" }.joined()
            let out = "\(directory)/identity-\(workload)"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try chain.write(toFile: "\(out)/cert-chain.pem", atomically: true, encoding: .utf8)
            try writePrivate(key.pemRepresentation + "\n", to: "\(out)/key.pem")
            try rootsPEM.write(toFile: "\(out)/root-cert.pem", atomically: true, encoding: .utf8)
            let haproxyPEM = "\(directory)/haproxy-\(workload).pem"
            try writePrivate(chain + key.pemRepresentation + "\n", to: haproxyPEM)
            written.append((out, haproxyPEM))
        }
        return BenchMesh(
            executable: executable, state: state, rootCert: stateDirectory.rootCertPath,
            identityA: written[0].identity, identityB: written[1].identity, haproxyPEMA: written[0].haproxyPEM, haproxyPEMB: written[1].haproxyPEM
        )
    }

    /// Writes a file that holds a private key: created with mode 0600.
    static func writePrivate(_ text: String, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw BenchError("cannot write \(path)")
        }
    }

    /// Runs a short command to completion (bounded at 60 s); fails with its output unless it exits 0.
    static func runToCompletion(name: String, file: String, arguments: [String], directory: String) async throws {
        let child = try BenchChild.spawn(name: name, file: file, arguments: arguments, logDirectory: directory)
        defer { child.stop() }
        guard let status = await child.waitForExit(timeout: .seconds(60)) else {
            throw BenchError("\(name) did not finish within 60 s:\n\(child.logTail())")
        }
        guard status == 0 else { throw BenchError("\(name) failed with status \(status):\n\(child.logTail())") }
    }
}
