#!/usr/bin/env python3
"""Reads a workload's identity from a SPIFFE Workload API socket with the `spiffe` package from
PyPI, a client Rampart shares no code with, and prints what it got as JSON.

Usage: spiffe_workload_client.py SOCKET AUDIENCE
"""
import json
import sys

import grpc
from cryptography.hazmat.primitives import serialization
from spiffe import WorkloadApiClient
from spiffe._proto import workload_pb2, workload_pb2_grpc


def main() -> int:
    socket, audience = sys.argv[1], sys.argv[2]
    out = {}
    with WorkloadApiClient(f"unix://{socket}") as client:
        svid = client.fetch_x509_svid(timeout=20)
        out["x509_spiffe_id"] = str(svid.spiffe_id)
        out["x509_chain_length"] = len(svid.cert_chain)
        out["x509_serial"] = format(svid.leaf.serial_number, "x")
        leaf_key = svid.leaf.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        own_key = svid.private_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        out["x509_key_matches"] = leaf_key == own_key

        bundles = client.fetch_x509_bundles(timeout=20)
        bundle = bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        out["x509_bundle_trust_domain"] = str(bundle.trust_domain) if bundle else None
        out["x509_bundle_authorities"] = len(bundle.x509_authorities) if bundle else 0

        jwt_bundles = client.fetch_jwt_bundles(timeout=20)
        jwt_bundle = jwt_bundles.get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        out["jwt_bundle_keys"] = len(jwt_bundle.jwt_authorities) if jwt_bundle else 0

        jwt = client.fetch_jwt_svid(audience={audience}, timeout=20)
        out["jwt_spiffe_id"] = str(jwt.spiffe_id)
        out["jwt_audience"] = sorted(jwt.audience)
        # Validate locally with the bundle the agent served, then through the agent.
        from spiffe.svid.jwt_svid import JwtSvid
        local = JwtSvid.parse_and_validate(jwt.token, jwt_bundle, {audience})
        out["jwt_locally_valid_for"] = str(local.spiffe_id)
        remote = client.validate_jwt_svid(jwt.token, audience, timeout=20)
        out["jwt_agent_valid_for"] = str(remote.spiffe_id)
        try:
            client.validate_jwt_svid(jwt.token, audience + "-other", timeout=20)
            out["wrong_audience_refused"] = False
        except Exception:
            out["wrong_audience_refused"] = True

    # Without the security header, the agent must refuse.
    channel = grpc.insecure_channel(f"unix:{socket}")
    stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
    try:
        next(stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), timeout=10))
        out["headerless"] = "accepted"
    except grpc.RpcError as error:
        out["headerless"] = error.code().name
    channel.close()
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
