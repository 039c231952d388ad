import ArgumentParser
import Foundation
import GRPCCore
import RampartAPI
import RampartControlPlane
import RampartIdentity
import RampartPKI
import RampartStore
import SwiftASN1
import X509

struct Cert: AsyncParsableCommand {
    /// Refuses a serial that is not hexadecimal (colons and 0x allowed), before the store is read.
    static func checkSerial(_ serial: String) throws {
        var digits = Substring(serial)
        if digits.lowercased().hasPrefix("0x") { digits = digits.dropFirst(2) }
        let hex = digits.filter { $0 != ":" }
        guard !hex.isEmpty, hex.allSatisfy(\.isHexDigit) else {
            throw ValidationError("serial \"\(serial)\" is not hexadecimal: give it as 'rampart cert list' shows it, such as 3f2a9c")
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "cert",
        abstract: "List, inspect, revoke, sign and request workload certificates.",
        subcommands: [List.self, Show.self, Revoke.self, Sign.self, Request.self]
    )

    /// Parses a SPIFFE ID given on the command line and checks it is in the CA's trust domain.
    static func parseIdentity(_ text: String, trustDomain: TrustDomain) throws -> SPIFFEID {
        let id: SPIFFEID
        do { id = try SPIFFEID(parsing: text) } catch {
            throw ValidationError("--spiffe-id \(text): \(error.reason)")
        }
        guard id.trustDomain == trustDomain else {
            throw ValidationError("--spiffe-id \(text) is in trust domain \(id.trustDomain), but this CA issues in \(trustDomain)")
        }
        guard id.isWorkloadIdentity else {
            throw ValidationError("--spiffe-id \(text) has no path: give a workload identity such as spiffe://\(trustDomain)/ns/default/sa/default")
        }
        guard id.string.utf8.count <= SPIFFEID.maxLength else {
            throw ValidationError(
                "--spiffe-id is \(id.string.utf8.count) bytes long; the CA issues SPIFFE IDs of at most \(SPIFFEID.maxLength) bytes, as the SPIFFE specification asks: use a shorter path")
        }
        return id
    }

    /// JSON for one record, with the fields operators script against.
    static func json(_ record: CertificateRecord, now: Date, includeChain: Bool) -> [String: Any] {
        let iso = ISO8601DateFormatter()
        var object: [String: Any] = [
            "serial": record.serial,
            "spiffe_id": record.spiffeID,
            "not_before": iso.string(from: record.notBefore),
            "not_after": iso.string(from: record.notAfter),
            "issued_at": iso.string(from: record.issuedAt),
            "status": record.displayStatus(at: now),
            "caller_identity": record.callerIdentity,
            "auth_method": record.authMethod.rawValue,
            "public_key_sha256": record.publicKeySHA256,
        ]
        if let revokedAt = record.revokedAt { object["revoked_at"] = iso.string(from: revokedAt) }
        if let reason = record.revocationReason { object["revocation_reason"] = reason }
        if includeChain { object["chain_pem"] = record.chainPEM }
        return object
    }

    static func printJSON(_ value: Any) throws {
        let data = try JSONSerialization.data(withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List issued certificates, newest first.")

        @OptionGroup var stateOptions: StateOptions

        @Option(help: ArgumentHelp("Only certificates for this identity.", valueName: "spiffe-id"))
        var spiffeId: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("Only unexpired certificates that expire within this long, such as 1h.", valueName: "duration"), transform: TTL.parse)
        var expiringWithin: TTL?

        @Flag(help: "Print a JSON array.")
        var json = false

        func run() async throws {
            let store = try StateDirectory(stateOptions.state).openStore(.readOnly)
            let now = Date()
            if let spiffeId {
                do {
                    _ = try SPIFFEID(parsing: spiffeId)
                } catch {
                    throw ValidationError("--spiffe-id \(spiffeId) is not a SPIFFE ID (\(error.reason)): give one such as spiffe://cluster.local/ns/shop/sa/cart")
                }
            }
            var filter = CertificateFilter(spiffeID: spiffeId)
            if let expiringWithin {
                filter.notAfterBefore = now.addingTimeInterval(expiringWithin.seconds)
                filter.notAfterAfter = now
            }
            let records = try await store.certificates(matching: filter)
            if json {
                try Cert.printJSON(records.map { Cert.json($0, now: now, includeChain: false) })
                return
            }
            let iso = ISO8601DateFormatter()
            print("SERIAL".padding(toLength: 34, withPad: " ", startingAt: 0) + "STATUS   NOT AFTER             SPIFFE ID")
            for record in records {
                let status = record.displayStatus(at: now).padding(toLength: 8, withPad: " ", startingAt: 0)
                print("\(record.serial.padding(toLength: 34, withPad: " ", startingAt: 0))\(status) \(iso.string(from: record.notAfter))  \(record.spiffeID)")
            }
            print("\(records.count) certificate(s)")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one issued certificate, with its chain.")

        @OptionGroup var stateOptions: StateOptions

        @Argument(help: "The serial number in hex (colons and 0x are accepted).")
        var serial: String

        @Flag(help: "Print JSON.")
        var json = false

        func validate() throws {
            try Cert.checkSerial(serial)
        }

        func run() async throws {
            let store = try StateDirectory(stateOptions.state).openStore(.readOnly)
            guard let record = try await store.certificate(serial: serial) else {
                // Not a usage error: the command was right, the store holds no such certificate (as 'get' reports).
                throw CommandFailure("no certificate with serial \(serial) in this CA's store: list serials with 'rampart cert list --state \(stateOptions.state)'")
            }
            let object = Cert.json(record, now: Date(), includeChain: true)
            if json {
                try Cert.printJSON(object)
                return
            }
            for key in object.keys.sorted() where key != "chain_pem" {
                print("\(key): \(object[key] ?? "")")
            }
            print(record.chainPEM)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a certificate: it can no longer be used to renew. Works while the CA runs.")

        @OptionGroup var stateOptions: StateOptions

        @Argument(help: "The serial number in hex.")
        var serial: String

        @Option(help: "Why, for the record (keyCompromise, superseded, …).")
        var reason: String?

        func validate() throws {
            try Cert.checkSerial(serial)
            if let reason, reason.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                throw ValidationError("--reason holds a control character (a newline, an escape): write the reason on one line of printable text")
            }
            if let reason, reason.count > 256 {
                throw ValidationError("--reason is \(reason.count) characters long: keep it under 256, such as keyCompromise")
            }
        }

        func run() async throws {
            let store = try await StateDirectory(stateOptions.state).openStoreForWriting()
            do {
                let record = try await store.revoke(serial: serial, reason: reason, at: Date(), actor: Operator.actor)
                print("revoked \(record.serial) (\(record.spiffeID))")
            } catch let error as StoreError {
                throw CommandFailure(error.reason)
            }
        }
    }

    struct Sign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Sign a CSR offline as the CA's administrator; prints the chain, leaf first.")

        @OptionGroup var stateOptions: StateOptions

        @Option(help: ArgumentHelp("A PEM CSR file.", valueName: "file"))
        var csr: String

        @Option(help: ArgumentHelp("The identity to certify.", valueName: "spiffe-id"))
        var spiffeId: String

        @Option(parsing: .unconditional, help: "Lifetime, such as 24h (the default) or 30d; at most 90d.", transform: TTL.parse)
        var ttl: TTL?

        func run() async throws {
            let state = StateDirectory(stateOptions.state)
            let trustDomain = try state.loadConfig().parsedTrustDomain()
            let id = try Cert.parseIdentity(spiffeId, trustDomain: trustDomain)
            let pem = try FileOptions.readText(csr, option: "--csr", expected: "a PEM certificate request (openssl req -new)")
            let now = Date()
            let issuer = try SVIDIssuer(authority: try await state.loadAuthority(now: now))
            if let ttl {
                // Said in the user's own terms: --ttl 91d, not 7862400s.
                let (longest, shortest) = (issuer.policy.maxTTL, issuer.policy.minTTL)
                if ttl.seconds > longest {
                    throw ValidationError("--ttl \(ttl.text) is longer than the CA's longest certificate lifetime, \(TTL.words(longest)): give at most \(TTL.words(longest))")
                }
                if ttl.seconds < shortest {
                    throw ValidationError("--ttl \(ttl.text) is shorter than the CA's shortest certificate lifetime, \(TTL.words(shortest)): give at least \(TTL.words(shortest))")
                }
            }
            let facts: CSRFacts
            let lifetime: TimeInterval
            do {
                lifetime = try issuer.policy.ttl(forRequestedSeconds: Int64(ttl?.seconds ?? 0))
                facts = try CSRInspection.inspect(pem: pem)
                try CSRInspection.check(facts, for: id.string)
            } catch {
                // The lifetime comes from --ttl here, not from a request's validity_duration.
                if error.code == .badValidity {
                    throw ValidationError("--ttl: " + error.reason.replacingOccurrences(of: "validity_duration ", with: "").replacingOccurrences(of: "send 0 for the default", with: "leave --ttl out for the default"))
                }
                throw ValidationError("\(csr): \(error.reason)")
            }
            let issued = try await issuer.issue(publicKey: facts.publicKey, spiffeID: id, ttl: lifetime, now: now)
            let store = try await state.openStoreForWriting()
            let record = CertificateRecord(issued, issuedAt: now, callerIdentity: "admin", authMethod: .admin)
            try await store.recordIssued(
                [record],
                audit: [
                    AuditEntry(
                        time: now, type: .certificateIssued, actor: Operator.actor, subject: issued.serialHex,
                        details: record.issuanceDetails.merging(["auth": "admin"]) { $1 })
                ]
            )
            try StandardOutput.deliver(issued.chainPEM.joined(separator: "\n") + "\n", what: "the issued chain (recorded in the store)")
        }
    }

    struct Request: AsyncParsableCommand {
        /// Checks the files TLS reads before connecting, so that a wrong file is named rather than
        /// reported as the transport's failure: the roots are PEM certificates, the chain is, and
        /// the key is the private key of the chain's first certificate.
        static func checkCredentials(rootPEM: String, chainPEM: String?, keyPEM: String?, root: String, cert: String?, key: String?) throws {
            func certificates(_ text: String, _ option: String, _ path: String, _ expected: String) throws -> [Certificate] {
                let parsed = try? PEMDocument.parseMultiple(pemString: text).map { try Certificate(pemDocument: $0) }
                guard let parsed, !parsed.isEmpty else {
                    throw ValidationError("\(option) \(path) holds no PEM certificate: give \(expected)")
                }
                return parsed
            }
            _ = try certificates(rootPEM, "--root-cert", root, "the CA's root-cert.pem")
            guard let chainPEM, let keyPEM, let cert, let key else { return }
            let leaf = try certificates(chainPEM, "--cert", cert, "the certificate chain the CA issued (cert-chain.pem)")[0]
            guard let privateKey = try? Certificate.PrivateKey(pemEncoded: keyPEM) else {
                throw ValidationError("--key \(key) is not a PEM private key: give the key the CSR of --cert was made with (key.pem)")
            }
            guard privateKey.publicKey == leaf.publicKey else {
                throw ValidationError("--key \(key) is not the key of --cert \(cert): give the key.pem that goes with that certificate")
            }
        }

        static let configuration = CommandConfiguration(
            abstract: "Ask a running CA for a certificate over gRPC, as a node agent does; writes the chain."
        )

        @Option(help: ArgumentHelp("The CA's gRPC address.", valueName: "host:port"))
        var ca: String = "127.0.0.1:15012"

        @Option(help: ArgumentHelp("The trust bundle that verifies the CA (root-cert.pem).", valueName: "file"))
        var rootCert: String

        @Option(help: ArgumentHelp("A PEM CSR file.", valueName: "file"))
        var csr: String

        @Option(help: "A bootstrap token (or a JWT) to authenticate with.")
        var token: String?

        @Option(help: ArgumentHelp("The current certificate chain, to renew over mTLS.", valueName: "file"))
        var cert: String?

        @Option(help: ArgumentHelp("The key of --cert.", valueName: "file"))
        var key: String?

        @Option(parsing: .unconditional, help: "Requested lifetime; the CA's default (24h) when absent.", transform: TTL.parse)
        var ttl: TTL?

        @Option(help: ArgumentHelp("Where to write the chain (leaf first); standard output when absent.", valueName: "file"))
        var out: String?

        @Option(parsing: .unconditional, help: ArgumentHelp("How long the request may take, connecting included, in seconds.", valueName: "seconds"))
        var timeout: Int = 30

        func validate() throws {
            guard timeout > 0 else { throw ValidationError("--timeout must be a positive number of seconds, such as 30") }
            if (cert == nil) != (key == nil) { throw ValidationError("--cert and --key go together") }
            if token == nil && cert == nil { throw ValidationError("give --token (bootstrap) or --cert and --key (renewal)") }
            if let token, token.isEmpty || !token.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) {
                throw ValidationError("--token must be one token from 'rampart token create' (or one JWT): it holds a line break, space or control character, or is empty")
            }
        }

        func run() async throws {
            let address = try HostPort.parse(ca, option: "--ca")
            let rootPEM = try FileOptions.readText(rootCert, option: "--root-cert", expected: "the CA's root-cert.pem")
            let chainPEM = try cert.map { try FileOptions.readText($0, option: "--cert", expected: "the current certificate chain") }
            let keyPEM = try key.map { try FileOptions.readText($0, option: "--key", expected: "the key of --cert") }
            let csrPEM = try FileOptions.readText(csr, option: "--csr", expected: "a PEM certificate request (openssl req -new)")
            // Checked before the request: a token is spent, and a certificate issued, only once.
            if let out {
                try FileOptions.checkWritable(
                    out, option: "--out", inputs: [("--key", key), ("--cert", cert), ("--csr", csr), ("--root-cert", rootCert)])
            }
            try Self.checkCredentials(rootPEM: rootPEM, chainPEM: chainPEM, keyPEM: keyPEM, root: rootCert, cert: cert, key: key)
            let client = CAClient(
                host: address.host, port: address.port, rootPEM: rootPEM, clientChainPEM: chainPEM, clientKeyPEM: keyPEM,
                timeout: .seconds(timeout))
            let chain: [String]
            do {
                chain = try await client.withConnection { connection in
                    try await connection.createCertificate(csrPEM: csrPEM, validitySeconds: Int64(ttl?.seconds ?? 0), bearer: token)
                }
            } catch let error as RPCError where [.unavailable, .deadlineExceeded].contains(error.code) {
                throw CommandFailure(RPCFailureText.describe(error, server: ca, rootHint: "--root-cert \(rootCert)"))
            } catch let error as RPCError {
                throw CommandFailure("the CA refused the request (\(error.code)): \(error.message)")
            }
            let text = chain.map { $0.hasSuffix("\n") ? $0 : $0 + "\n" }.joined()
            if let out {
                try FileOptions.write(text, to: out)
            } else {
                try StandardOutput.deliver(text, what: "the issued chain")
            }
        }
    }
}
