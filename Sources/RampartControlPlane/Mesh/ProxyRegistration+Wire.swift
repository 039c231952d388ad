import RampartAPI
import RampartIdentity

extension ProxyRegistration {
    /// Checks a wire `Registration` from a caller whose certificate names `caller`.
    ///
    /// `workload` and `namespace` must be DNS labels; when the caller's SPIFFE ID has Istio's
    /// `/ns/<ns>/sa/<sa>` form the namespace must be that one; each service needs a name and a port
    /// in 1–65535; `inbound_address`, when given, must be `host:port`; `app_port` is a port or 0.
    public init(validating wire: Rampart_Config_V1_Registration, caller: SPIFFEID) throws(Refusal) {
        for (field, value) in [("workload", wire.workload), ("namespace", wire.namespace)] {
            guard !value.isEmpty else {
                throw Refusal(.invalidArgument, "registration.\(field) is empty: set it to the workload's \(field) (a DNS label such as 'reviews-v1' or 'shop')")
            }
            guard Self.isDNSLabel(value) else {
                throw Refusal(
                    .invalidArgument,
                    "registration.\(field) '\(value)' is not a DNS label: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit"
                )
            }
        }
        if let expected = caller.istioWorkload?.namespace, expected != wire.namespace {
            throw Refusal(
                .permissionDenied,
                "registration.namespace '\(wire.namespace)' does not match the namespace '\(expected)' of the caller's certificate \(caller): register in namespace '\(expected)', or connect with a certificate issued for '\(wire.namespace)'"
            )
        }
        var services: [ServicePort] = []
        for (index, service) in wire.services.enumerated() {
            guard !service.name.isEmpty else {
                throw Refusal(.invalidArgument, "registration.services[\(index)].name is empty: name the service, as --service NAME:PORT does")
            }
            guard (1...65535).contains(service.port) else {
                throw Refusal(.invalidArgument, "registration.services[\(index)] '\(service.name)' has port \(service.port): expected 1-65535")
            }
            services.append(ServicePort(name: service.name, port: Int(service.port)))
        }
        if !wire.inboundAddress.isEmpty, InboundAddress(parsing: wire.inboundAddress) == nil {
            throw Refusal(
                .invalidArgument,
                "registration.inbound_address '\(wire.inboundAddress)' is not host:port with a port in 1-65535: give the inbound listener's address, such as 127.0.0.1:15006 or [::1]:15006"
            )
        }
        guard wire.appPort <= 65535 else {
            throw Refusal(.invalidArgument, "registration.app_port \(wire.appPort) is not a port: give the application's port (1-65535), or 0 when unknown")
        }
        self.init(
            workload: wire.workload, namespace: wire.namespace, labels: wire.labels, services: services,
            inboundAddress: wire.inboundAddress, proxyVersion: wire.proxyVersion, appPort: Int(wire.appPort)
        )
    }
}
