/// Reads the server name a TLS client asks for (its SNI) out of the ClientHello, before the
/// handshake is handed to NIOSSL, as Envoy's TLS inspector does on Istio's inbound listener: it is
/// what `connection.sni` conditions compare. Nothing else of the handshake is read here; the
/// TLS library still parses and answers the whole ClientHello itself.
///
/// The layout read is RFC 8446 §4.1.2 (the ClientHello, the same in TLS 1.2) inside one
/// handshake record (RFC 8446 §5.1), and RFC 6066 §3 for the `server_name` extension. A
/// ClientHello split over several records, or one that does not parse, has no server name.
enum ClientHelloInspector {
    /// What the bytes seen so far say.
    enum Outcome: Equatable {
        /// The first record is not complete yet.
        case needMore
        /// The ClientHello names no server, or cannot be read.
        case none
        /// The `host_name` the client asked for.
        case serverName(String)
    }

    /// The largest record a ClientHello may come in (2^14 bytes of plaintext, plus its header):
    /// past that, nothing more is waited for.
    static let recordLimit = 5 + 16384

    static func inspect(_ bytes: some Collection<UInt8>) -> Outcome {
        let bytes = Array(bytes.prefix(recordLimit))
        guard bytes.count >= 5 else { return .needMore }
        guard bytes[0] == 0x16 else { return .none }
        let length = Int(bytes[3]) << 8 | Int(bytes[4])
        guard length <= 16384 else { return .none }
        guard bytes.count >= 5 + length else { return .needMore }
        var reader = Reader(bytes[5..<(5 + length)])
        // Handshake header: type client_hello (1), then a 24-bit length that must fit the record.
        guard reader.byte() == 1, let body = reader.length(3), body <= reader.remaining else { return .none }
        reader = Reader(reader.take(body) ?? [])
        // legacy_version, random, legacy_session_id, cipher_suites, legacy_compression_methods.
        guard reader.skip(2 + 32), reader.skipVector(1), reader.skipVector(2), reader.skipVector(1) else { return .none }
        guard reader.remaining > 0 else { return .none }
        guard let extensions = reader.length(2), let block = reader.take(extensions) else { return .none }
        var list = Reader(block)
        while list.remaining > 0 {
            guard let type = list.length(2), let size = list.length(2), let data = list.take(size) else { return .none }
            if type == 0 { return serverName(in: data) }
        }
        return .none
    }

    /// The `host_name` entry of a `server_name` extension's data.
    private static func serverName(in data: ArraySlice<UInt8>) -> Outcome {
        var reader = Reader(data)
        guard let listLength = reader.length(2), let entries = reader.take(listLength) else { return .none }
        var list = Reader(entries)
        while list.remaining > 0 {
            guard let type = list.byte(), let size = list.length(2), let name = list.take(size) else { return .none }
            // host_name (0): ASCII, no trailing dot, as RFC 6066 §3 has it; other bytes are not a name.
            guard type == 0 else { continue }
            guard !name.isEmpty, name.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return .none }
            return .serverName(String(decoding: name, as: UTF8.self))
        }
        return .none
    }

    /// A cursor over bytes that never reads past their end.
    private struct Reader {
        private var bytes: ArraySlice<UInt8>

        init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }
        init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

        var remaining: Int { bytes.count }

        mutating func byte() -> UInt8? {
            guard let first = bytes.first else { return nil }
            bytes = bytes.dropFirst()
            return first
        }

        /// A big-endian length of `size` bytes.
        mutating func length(_ size: Int) -> Int? {
            guard bytes.count >= size else { return nil }
            let value = bytes.prefix(size).reduce(0) { $0 << 8 | Int($1) }
            bytes = bytes.dropFirst(size)
            return value
        }

        mutating func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard count >= 0, bytes.count >= count else { return nil }
            defer { bytes = bytes.dropFirst(count) }
            return bytes.prefix(count)
        }

        mutating func skip(_ count: Int) -> Bool { take(count) != nil }

        /// Skips a vector whose length takes `size` bytes.
        mutating func skipVector(_ size: Int) -> Bool {
            guard let count = length(size) else { return false }
            return skip(count)
        }
    }
}
