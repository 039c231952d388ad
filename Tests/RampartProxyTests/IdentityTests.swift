import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
@testable import RampartProxy
import SwiftASN1
import Testing
import X509

@Suite("Workload identity", .serialized)
struct IdentityTests {
    @Test("the agent's files load into an identity naming the leaf's SPIFFE ID")
    func loadsDirectory() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let issued = try await mesh.identity(namespace: "default", serviceAccount: "web")
        let identity = try ProxyIdentity(directory: issued.directory)
        #expect(identity.spiffeID.string == issued.spiffeID)
        #expect(identity.serial == RevocationList.normalize(issued.serial))
        #expect(identity.roots.count == 1)
    }

    @Test("a missing or broken identity is refused with the file and what to do")
    func refusesBrokenFiles() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        #expect {
            try ProxyIdentity(directory: "\(mesh.directory)/nowhere")
        } throws: { error in
            (error as? ProxyError)?.reason.contains("--identity-dir") == true
        }
        let issued = try await mesh.identity(namespace: "default", serviceAccount: "web")
        try "not a certificate".write(toFile: "\(issued.directory)/cert-chain.pem", atomically: true, encoding: .utf8)
        #expect(throws: ProxyError.self) { try ProxyIdentity(directory: issued.directory) }
    }

    @Test("a Workload API X509SVID (concatenated DER chain and bundle, PKCS#8 key) loads the same identity")
    func loadsWorkloadAPIMessage() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let issued = try await mesh.identity(namespace: "default", serviceAccount: "web")
        let files = try ProxyIdentity(directory: issued.directory)
        func der(_ certificate: Certificate) throws -> [UInt8] {
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            return serializer.serializedBytes
        }
        let keyPEM = try String(contentsOfFile: "\(issued.directory)/key.pem", encoding: .utf8)
        let key = try PEMDocument(pemString: keyPEM).derBytes
        // A chain of two (leaf, then the root standing in for an intermediate) checks the DER splitting.
        let chain = try der(files.leaf) + der(mesh.authority.certificate)
        let identity = try ProxyIdentity(chainDER: chain, keyPKCS8: key, bundleDER: try der(mesh.authority.certificate), source: "test")
        #expect(identity.spiffeID == files.spiffeID)
        #expect(identity.chain.count == 2)
        #expect(try DERCertificates.parse(chain).count == 2)
        #expect(throws: ProxyError.self) { try ProxyIdentity(chainDER: [0x30, 0x03, 0x01], keyPKCS8: key, bundleDER: [], source: "test") }
    }

    @Test("a rotation is picked up without a restart, and an open connection keeps working")
    func rotation() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let app = try await EchoApp()
        let appTask = Task { await app.run() }
        defer { appTask.cancel() }
        let server = try await mesh.identity(namespace: "default", serviceAccount: "server")
        let proxy = try await TestProxy(
            workload: WorkloadInfo(name: "server-v1", namespace: "default", appPort: app.port), identityDirectory: server.directory, appPort: app.port)
        try proxy.install(SnapshotBuilder.snapshot())
        let client = try await mesh.identity(namespace: "default", serviceAccount: "client")

        // One client, one pooled keep-alive connection, opened before the rotation.
        let identity = try ProxyIdentity(directory: client.directory)
        let contexts = try TLSContexts(identity: identity)
        let upstream = UpstreamClient(maxIdlePerTarget: 1, maxBodyBytes: 1 << 20)
        defer { upstream.shutdown() }
        let target = UpstreamTarget(
            host: "127.0.0.1", port: proxy.inboundPort,
            tls: TLSOrigination(generation: 1, verifier: PeerVerifier(roots: identity.roots, revoked: RevocationList(serials: [])), context: contexts.client))
        let before = try await upstream.send(TestClient.request(path: "/", host: "app", headers: []), to: target)
        #expect(before.response.head.status == .ok)
        let firstSerial = try #require(before.peer?.serial)

        // The agent writes a new set over the old one; the proxy reloads it.
        let rotated = try await mesh.identity(namespace: "default", serviceAccount: "server")
        for name in ["cert-chain.pem", "key.pem", "root-cert.pem"] {
            #expect(rename("\(rotated.directory)/\(name)", "\(server.directory)/\(name)") == 0)
        }
        let current = try proxy.context.identity.reload()
        #expect(current.generation == 2)
        #expect(current.identity.serial == RevocationList.normalize(rotated.serial))

        // The pooled connection, made with the old certificate, still answers.
        let during = try await upstream.send(TestClient.request(path: "/again", host: "app", headers: []), to: target)
        #expect(during.response.head.status == .ok)
        #expect(during.peer?.serial == firstSerial)

        // A new connection sees the new certificate.
        let fresh = try await TestClient.mtls(port: proxy.inboundPort, identityDirectory: client.directory)
        #expect(fresh.peer?.serial == RevocationList.normalize(rotated.serial))
        await proxy.stop()
        try? await app.serverChannel.close()
    }
}

/// The extended key usage a peer's certificate must allow for the side it is on.
@Suite("Peer certificate usage")
struct PeerUsageTests {
    /// A leaf for `spiffe://cluster.local/ns/default/sa/x`, signed by the fixture's CA, with `usages`
    /// as its extended key usage (none: no such extension).
    static func leaf(_ mesh: MeshFixture, _ usages: [ExtendedKeyUsage.Usage]?) throws -> [UInt8] {
        let key = P256.Signing.PrivateKey()
        var extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            SubjectAlternativeNames([.uniformResourceIdentifier("spiffe://cluster.local/ns/default/sa/x")])
        }
        if let usages { try extensions.append(Certificate.Extension(ExtendedKeyUsage(usages), critical: false)) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-60), notValidAfter: now.addingTimeInterval(3600),
            issuer: mesh.authority.certificate.subject, subject: DistinguishedName(), signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: mesh.authority.privateKey)
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }

    @Test("a client certificate whose extended key usage leaves out client authentication is refused inbound, and a server's without server authentication outbound")
    func usages() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let inbound = PeerVerifier(roots: mesh.authority.roots, revoked: RevocationList(serials: []), usage: .clientAuth)
        let outbound = PeerVerifier(roots: mesh.authority.roots, revoked: RevocationList(serials: []), usage: .serverAuth)
        func accepted(_ verifier: PeerVerifier, _ usages: [ExtendedKeyUsage.Usage]?) async throws -> Bool {
            do {
                _ = try await verifier.verify(chainDER: [try Self.leaf(mesh, usages)], now: Date())
                return true
            } catch {
                return false
            }
        }
        #expect(try await accepted(inbound, [.serverAuth, .clientAuth]))
        #expect(try await accepted(inbound, nil), "no extension: any usage")
        #expect(try await accepted(inbound, [.any]))
        #expect(try await !accepted(inbound, [.serverAuth]))
        #expect(try await !accepted(inbound, [.codeSigning]))
        #expect(try await accepted(outbound, [.serverAuth]))
        #expect(try await !accepted(outbound, [.clientAuth]))
        let refusal: String
        do {
            _ = try await inbound.verify(chainDER: [try Self.leaf(mesh, [.codeSigning])], now: Date())
            refusal = "accepted"
        } catch let error as ProxyError {
            refusal = error.reason
        } catch {
            refusal = "\(error)"
        }
        #expect(refusal.contains("extended key usage") && refusal.contains("client"), "\(refusal)")
    }
}

/// The peer of a resumed TLS session, whose certificate comes from the session.
@Suite("Resumed session peers")
struct ResumedPeerTests {
    static func refusal(_ body: () throws -> VerifiedPeer) -> String {
        do {
            let peer = try body()
            return "accepted \(peer.spiffeIDString)"
        } catch let error as ProxyError {
            return error.reason
        } catch {
            return "\(error)"
        }
    }

    @Test("a resumed session's certificate is checked again for its validity window, revocation, usage and SPIFFE ID")
    func checks() async throws {
        let mesh = try MeshFixture()
        defer { mesh.remove() }
        let der = try PeerUsageTests.leaf(mesh, [.clientAuth])
        let serial = try Certificate(derEncoded: der).serialNumber.compactHex
        let verifier = PeerVerifier(roots: mesh.authority.roots, revoked: RevocationList(serials: []), usage: .clientAuth)

        let peer = try verifier.verifyResumed(leafDER: der, now: Date())
        #expect(peer.spiffeIDString == "spiffe://cluster.local/ns/default/sa/x")
        #expect(peer.serial == serial)
        // The same certificate through a full handshake's check gives the same peer.
        #expect(try await verifier.verify(chainDER: [der], now: Date()) == peer)

        let expired = Self.refusal { try verifier.verifyResumed(leafDER: der, now: Date().addingTimeInterval(7200)) }
        #expect(expired.contains("expired") && expired.contains("full handshake"), "\(expired)")
        let early = Self.refusal { try verifier.verifyResumed(leafDER: der, now: Date().addingTimeInterval(-3600)) }
        #expect(early.contains("not valid before"), "\(early)")

        let revoked = PeerVerifier(roots: mesh.authority.roots, revoked: RevocationList(serials: [serial]), usage: .clientAuth)
        let revocation = Self.refusal { try revoked.verifyResumed(leafDER: der, now: Date()) }
        #expect(revocation.contains("revoked") && revocation.contains(serial), "\(revocation)")

        let server = PeerVerifier(roots: mesh.authority.roots, revoked: RevocationList(serials: []), usage: .serverAuth)
        #expect(Self.refusal { try server.verifyResumed(leafDER: der, now: Date()) }.contains("extended key usage"))

        let unexpected = PeerVerifier(roots: mesh.authority.roots, revoked: RevocationList(serials: []), expected: ["spiffe://cluster.local/ns/default/sa/y"], usage: .clientAuth)
        #expect(Self.refusal { try unexpected.verifyResumed(leafDER: der, now: Date()) }.contains("not an identity the registry expects"))

        let garbage = Self.refusal { try verifier.verifyResumed(leafDER: [0x30, 0x03, 0x02, 0x01, 0x01], now: Date()) }
        #expect(garbage.contains("not an X.509-SVID"), "\(garbage)")
    }
}
