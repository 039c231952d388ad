import RampartPolicy

extension AuthzRequest {
    /// The same request with `jwt` replaced, as request authentication hands it to policy.
    public func with(jwt: JWTOutcome?) -> AuthzRequest {
        AuthzRequest(
            transport: transport, source: source, destination: destination, method: method, host: host, path: path,
            headers: headers, extAuthz: extAuthz, sni: sni, jwt: jwt, repeatedHeaders: repeatedHeaders)
    }
}
