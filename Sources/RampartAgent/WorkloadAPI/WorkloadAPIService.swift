import Foundation
import GRPCCore
import RampartAPI
import RampartAuthn
import RampartIdentity
import SwiftProtobuf

/// The SPIFFE Workload API, served from the agent's current identity.
///
/// The X.509 and bundle methods are streams: the current value is sent at once, then again on
/// every rotation or bundle change. A caller connecting before the first issuance waits for it.
public struct WorkloadAPIService: Workload_SpiffeWorkloadAPI.SimpleServiceProtocol {
    let agent: NodeAgent

    public init(agent: NodeAgent) {
        self.agent = agent
    }

    public func fetchX509SVID(request: Workload_X509SVIDRequest, response: RPCWriter<Workload_X509SVIDResponse>, context: ServerContext) async throws {
        let agent = self.agent
        try await Self.untilCancelled(context) {
            var sent = false
            for await snapshot in agent.state.updates() {
                if snapshot.svid.notAfter <= agent.clock.now() {
                    // An expired SVID is never handed out. A caller that has had a valid one keeps
                    // waiting for the renewal; one that has had none is told why at once.
                    if sent { continue }
                    let failing = agent.state.status.lastError.map { ": \($0)" } ?? ""
                    throw RPCError(
                        code: .unavailable,
                        message: "the agent's X.509-SVID expired at \(Self.timestamp(snapshot.svid.notAfter)) and is not renewed yet\(failing); retry later")
                }
                try await response.write(Self.x509SVIDResponse(snapshot))
                sent = true
            }
        }
    }

    public func fetchX509Bundles(request: Workload_X509BundlesRequest, response: RPCWriter<Workload_X509BundlesResponse>, context: ServerContext) async throws {
        let agent = self.agent
        try await Self.untilCancelled(context) {
            var lastSent: [UInt8]?
            for await snapshot in agent.state.updates() {
                let der = snapshot.bundle.rootsDER
                if der == lastSent { continue }
                var message = Workload_X509BundlesResponse()
                message.bundles = [snapshot.bundle.trustDomain.idString: Data(der)]
                try await response.write(message)
                lastSent = der
            }
        }
    }

    /// Runs a stream's `body` until it returns or the caller cancels the call. gRPC reports a
    /// cancelled call through the context and does not cancel the handler's task, so a stream
    /// waiting for the next rotation would otherwise wait, and hold its watcher, forever.
    static func untilCancelled(_ context: ServerContext, _ body: @escaping @Sendable () async throws -> Void) async throws {
        let cancellation = context.cancellation
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await body() }
            group.addTask { try await cancellation.cancelled }
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601)
    }

    public func fetchJWTSVID(request: Workload_JWTSVIDRequest, context: ServerContext) async throws -> Workload_JWTSVIDResponse {
        let audience = request.audience.filter { !$0.isEmpty }
        guard !audience.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "audience must be specified: name the service the JWT-SVID is for")
        }
        if !request.spiffeID.isEmpty {
            do {
                _ = try SPIFFEID(parsing: request.spiffeID)
            } catch {
                throw RPCError(code: .invalidArgument, message: "invalid requested SPIFFE ID \(request.spiffeID): \(error.reason)")
            }
        }
        if !request.spiffeID.isEmpty, let current = agent.state.current, current.svid.spiffeID.string != request.spiffeID {
            throw RPCError(code: .permissionDenied, message: "this workload's identity is \(current.svid.spiffeID), not \(request.spiffeID): leave spiffe_id empty or ask for your own")
        }
        do {
            let (token, id) = try await agent.jwtSVID(audience: audience)
            var svid = Workload_JWTSVID()
            svid.spiffeID = id.string
            svid.svid = token
            var message = Workload_JWTSVIDResponse()
            message.svids = [svid]
            return message
        } catch let error as AgentError {
            throw RPCError(code: .unavailable, message: "cannot get a JWT-SVID: \(error.reason)")
        }
    }

    public func fetchJWTBundles(request: Workload_JWTBundlesRequest, response: RPCWriter<Workload_JWTBundlesResponse>, context: ServerContext) async throws {
        let agent = self.agent
        try await Self.untilCancelled(context) {
            var lastSent: Data?
            for await snapshot in agent.state.updates() {
                guard let jwt = snapshot.bundle.jwt else { continue }
                let json = jwt.json()
                if json == lastSent { continue }
                var message = Workload_JWTBundlesResponse()
                message.bundles = [snapshot.bundle.trustDomain.idString: json]
                try await response.write(message)
                lastSent = json
            }
        }
    }

    public func validateJWTSVID(request: Workload_ValidateJWTSVIDRequest, context: ServerContext) async throws -> Workload_ValidateJWTSVIDResponse {
        guard !request.audience.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "audience must be specified: give the audience the token was meant for")
        }
        guard !request.svid.isEmpty else {
            throw RPCError(code: .invalidArgument, message: "svid must be specified: give the JWT-SVID to validate")
        }
        let validated: JWTSVIDValidator.Validated
        do {
            validated = try await agent.validateJWTSVID(request.svid, audience: request.audience)
        } catch let error as AuthnError {
            throw RPCError(code: .invalidArgument, message: "the JWT-SVID is not valid: \(error.reason)")
        } catch let error as AgentError {
            throw RPCError(code: .unavailable, message: error.reason)
        }
        var message = Workload_ValidateJWTSVIDResponse()
        message.spiffeID = validated.spiffeID.string
        message.claims = Google_Protobuf_Struct(fields: validated.claims.mapValues(Self.protobufValue))
        return message
    }

    static func x509SVIDResponse(_ snapshot: IdentitySnapshot) -> Workload_X509SVIDResponse {
        var svid = Workload_X509SVID()
        svid.spiffeID = snapshot.svid.spiffeID.string
        svid.x509Svid = Data(snapshot.svid.chainDER)
        svid.x509SvidKey = Data(snapshot.svid.key.pkcs8DER)
        svid.bundle = Data(snapshot.bundle.rootsDER)
        var message = Workload_X509SVIDResponse()
        message.svids = [svid]
        return message
    }

    static func protobufValue(_ value: JSONValue) -> Google_Protobuf_Value {
        switch value {
        case .null: return Google_Protobuf_Value(nilLiteral: ())
        case .bool(let flag): return Google_Protobuf_Value(boolValue: flag)
        case .number(let number): return Google_Protobuf_Value(numberValue: number)
        case .string(let text): return Google_Protobuf_Value(stringValue: text)
        case .array(let items): return Google_Protobuf_Value(listValue: Google_Protobuf_ListValue(values: items.map(protobufValue)))
        case .object(let fields): return Google_Protobuf_Value(structValue: Google_Protobuf_Struct(fields: fields.mapValues(protobufValue)))
        }
    }
}

/// Refuses Workload API calls without the `workload.spiffe.io: true` metadata, as the SPIFFE
/// Workload Endpoint specification requires (it keeps browsers and SSRF out).
public struct WorkloadHeaderInterceptor: ServerInterceptor {
    public init() {}

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>,
        context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        // Exactly one value, exactly `true`, as the SPIRE agent checks it.
        let values = Array(request.metadata[stringValues: "workload.spiffe.io"])
        guard values == ["true"] else {
            let found = values.isEmpty ? "it is missing" : "it is \(values.map { "'\($0)'" }.joined(separator: ", "))"
            throw RPCError(
                code: .invalidArgument,
                message: "security header missing from request: Workload API calls must carry the metadata 'workload.spiffe.io: true' once, and \(found)")
        }
        return try await next(request, context)
    }
}

/// `rampart.agent.v1.AgentStatusService`: the agent's status for `rampart agent status`.
public struct AgentStatusService: Rampart_Agent_V1_AgentStatusService.SimpleServiceProtocol {
    let agent: NodeAgent

    public init(agent: NodeAgent) {
        self.agent = agent
    }

    public func getStatus(request: Rampart_Agent_V1_GetStatusRequest, context: ServerContext) async throws -> Rampart_Agent_V1_AgentStatus {
        let status = agent.state.status
        let now = agent.clock.now()
        var message = Rampart_Agent_V1_AgentStatus()
        // A certificate that has expired while renewal waits for its next attempt is reported so
        // at once, not at that attempt.
        let expired = status.notAfter.map { $0 <= now } ?? false
        message.state = expired && status.phase != .bootstrapping ? AgentStatusReport.Phase.expired.rawValue : status.phase.rawValue
        message.spiffeID = status.spiffeID ?? ""
        message.serial = status.serial ?? ""
        message.notBefore = Self.seconds(status.notBefore)
        message.notAfter = Self.seconds(status.notAfter)
        message.nextRenewal = Self.seconds(status.nextRenewal)
        message.lastError = status.lastError ?? ""
        message.lastErrorAt = Self.seconds(status.lastErrorAt)
        message.renewals = status.renewals
        message.failures = status.failures
        message.bundleRoots = UInt32(status.bundleRoots)
        message.now = Self.seconds(now)
        return message
    }

    static func seconds(_ date: Date?) -> Int64 {
        date.map { Int64($0.timeIntervalSince1970.rounded(.down)) } ?? 0
    }
}
