#!/usr/bin/env bash
# Regenerates Sources/RampartAPI/Generated from Protos/. The output is committed, so ordinary
# builds never run this. Needs protoc (Debian's protobuf-compiler) and the two Swift plugins,
# built here from the package's own resolved dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { apt-get update -qq && apt-get install -y -qq protobuf-compiler; }
swift build --product protoc-gen-swift
swift build --product protoc-gen-grpc-swift-2
bin=$(swift build --show-bin-path)
out=Sources/RampartAPI/Generated
mkdir -p "$out"
protoc -I Protos \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" \
  --swift_out="$out" --swift_opt=Visibility=Public \
  --grpc-swift_out="$out" --grpc-swift_opt=Visibility=Public,Client=true,Server=true \
  $(cd Protos && find . -name "*.proto" | sed "s|^\./||" | sort)
echo "generated into $out"
