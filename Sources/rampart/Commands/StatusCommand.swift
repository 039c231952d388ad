import ArgumentParser
import AsyncHTTPClient
import Foundation
import RampartIdentity
import NIOCore
import RampartControlPlane

/// `rampart status`: every proxy the control plane knows and whether it runs the current config,
/// like `istioctl proxy-status`.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show each proxy's config sync state, certificate expiry and connection, from the control plane's /debug/syncz."
    )

    @Option(help: ArgumentHelp("The control plane's admin HTTP address ('rampart ca serve --admin').", valueName: "host:port"))
    var admin: String = "127.0.0.1:15014"

    @Flag(help: "Print the /debug/syncz JSON instead of a table.")
    var json = false

    func validate() throws {
        _ = try HostPort.parse(admin, option: "--admin")
    }

    func run() async throws {
        let address = try HostPort.parse(admin, option: "--admin")
        let host = address.host.contains(":") ? "[\(address.host)]" : address.host
        let url = "http://\(host):\(address.port)/debug/syncz"
        let body = try await Self.fetch(url, admin: admin)
        let status: SyncStatus
        do {
            status = try JSONDecoder().decode(SyncStatus.self, from: body)
        } catch {
            throw CommandFailure("\(url) did not answer with Rampart's sync status (\(ReadableError.describe(error))): check that --admin \(admin) is a 'rampart ca serve' admin address")
        }
        if json {
            print(String(decoding: try status.json(), as: UTF8.self))
            return
        }
        let version = status.configVersion.map { String($0) } ?? "none"
        if status.proxies.isEmpty {
            print("no proxies connected (config version \(version))")
        } else {
            print(status.table(), terminator: "")
        }
    }

    /// GETs `url` and returns the body of a 200 answer, or says why there is none.
    static func fetch(_ url: String, admin: String) async throws -> Data {
        // One attempt, failing at once when nothing listens, rather than retrying until a deadline.
        var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(3), read: .seconds(10)))
        configuration.connectionPool.retryConnectionEstablishment = false
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            let body = try await get(url, admin: admin, client: client)
            try await client.shutdown()
            return body
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private static func get(_ url: String, admin: String, client: HTTPClient) async throws -> Data {
        let response: HTTPClientResponse
        do {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "accept", value: "application/json")
            response = try await client.execute(request, timeout: .seconds(10))
        } catch {
            let text = "\(error)"
            let reason =
                text.lowercased().contains("refused") ? "connection refused"
                : text.contains("deadlineExceeded") || text.contains("readTimeout") ? "no answer within 10 s"
                : text.contains("remoteConnectionClosed") ? "it closed the connection without an HTTP answer (a gRPC port?)"
                : text.contains("connectTimeout") ? "the connection timed out" : "it cannot be reached"
            throw CommandFailure(
                "cannot reach the control plane's admin server at \(admin): \(reason). Is 'rampart ca serve' running there? Pass its admin address (15014 by default) with --admin host:port"
            )
        }
        guard response.status == .ok else {
            throw CommandFailure("\(url) answered HTTP \(response.status.code), expected 200: check that --admin \(admin) is a 'rampart ca serve' admin address")
        }
        let buffer = try await response.body.collect(upTo: 16 << 20)
        return Data(buffer.readableBytesView)
    }
}
