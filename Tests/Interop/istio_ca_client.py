#!/usr/bin/env python3
"""An independent Istio CA client, in Python with grpcio.

Its stubs are generated at run time from its own copy of Istio's ca.proto, so it shares no code
with Rampart. It sends one CreateCertificate request, authenticated by a bearer token (bootstrap
token or JWT) and/or a client certificate, and writes the returned chain.

Exit codes: 0 issued; 3 the CA refused (stdout: "<STATUS_NAME>: <message>"); 2 usage.
"""
import argparse
import atexit
import importlib
import os
import shutil
import sys
import tempfile

import grpc
import grpc_tools
from grpc_tools import protoc


def load_stubs():
    here = os.path.dirname(os.path.abspath(__file__))
    out = tempfile.mkdtemp(prefix="istio-ca-stubs-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    code = protoc.main([
        "protoc", f"-I{os.path.join(here, 'proto')}", f"-I{well_known}",
        f"--python_out={out}", f"--grpc_python_out={out}", "security/v1alpha1/ca.proto",
    ])
    if code != 0:
        sys.exit(f"protoc failed with {code}")
    sys.path.insert(0, out)
    return (importlib.import_module("security.v1alpha1.ca_pb2"),
            importlib.import_module("security.v1alpha1.ca_pb2_grpc"))


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addr", required=True, help="host:port of the CA")
    parser.add_argument("--root", required=True, help="trust bundle PEM")
    parser.add_argument("--csr", help="CSR PEM (required unless --raw-hex)")
    parser.add_argument("--raw-hex", help="send these bytes (hex) as the request, unparsed: a request that is not protobuf")
    parser.add_argument("--token", help="bearer token")
    parser.add_argument("--cert", help="client certificate chain PEM (renewal)")
    parser.add_argument("--key", help="client key PEM (renewal)")
    parser.add_argument("--ttl", type=int, default=0, help="validity_duration in seconds")
    parser.add_argument("--out", required=True, help="where to write the chain")
    args = parser.parse_args()

    if not args.csr and not args.raw_hex:
        parser.error("one of --csr and --raw-hex is required")
    ca_pb2, ca_pb2_grpc = load_stubs()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(args.root),
        private_key=read(args.key) if args.key else None,
        certificate_chain=read(args.cert) if args.cert else None,
    )
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
    with grpc.secure_channel(args.addr, credentials) as channel:
        try:
            if args.raw_hex:
                # The method called by name with bytes as they are: no serializer checks them.
                call = channel.unary_unary(
                    "/istio.v1.auth.IstioCertificateService/CreateCertificate",
                    request_serializer=None, response_deserializer=ca_pb2.IstioCertificateResponse.FromString)
                response = call(bytes.fromhex(args.raw_hex), metadata=metadata, timeout=30)
            else:
                request = ca_pb2.IstioCertificateRequest(csr=read(args.csr).decode(), validity_duration=args.ttl)
                stub = ca_pb2_grpc.IstioCertificateServiceStub(channel)
                response = stub.CreateCertificate(request, metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            print(f"{error.code().name}: {error.details()}")
            return 3
    with open(args.out, "w") as handle:
        handle.write("".join(c if c.endswith("\n") else c + "\n" for c in response.cert_chain))
    print(f"issued chain of {len(response.cert_chain)} certificates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
