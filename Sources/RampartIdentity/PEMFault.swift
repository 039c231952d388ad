/// A PEM or DER parsing error in words, without the parsing library's type names and source
/// locations.
public enum PEMFault {
    /// What is wrong, given what the file should hold (`"a CERTIFICATE"`): "it holds a PRIVATE KEY
    /// block where a CERTIFICATE was expected", "its PEM does not parse", or that what it holds
    /// does not parse.
    public static func describe(_ error: any Error, expected: String) -> String {
        let text = String(describing: error)
        if let range = text.range(of: "incorrect discriminator ") {
            let found = text[range.upperBound...].prefix { $0 != "." }
            return "it holds a \(found) block where \(expected) was expected"
        }
        if text.contains("invalidPEMDocument") || text.contains("PEM") { return "its PEM does not parse" }
        return "\(expected) in it does not parse"
    }
}
