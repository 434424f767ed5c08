# The Loki exporter's dependencies: protobuf (push.proto compiled with protoc at build time),
# snappy (the protobuf push body's compression), libdeflate (the JSON body's gzip) and libcurl
# (the transport). Included by exporters/CMakeLists.txt after nodewarden_exporters exists.
#
# What a reader gets wrong: the agent does not use the generated classes (loki_push_body writes the
# same wire format straight into the batch, through the batcher's LokiBatchEncoder); push.proto is compiled for the Loki tests
# and fake, which decode what the agent sends with it. The exporter does not link it, so the agent
# maps no full libprotobuf (it imports google.protobuf.Timestamp, which the lite runtime lacks).
# The generated push.pb.cc is in its own library without nodewarden_warnings, and its folder is a
# SYSTEM include, so protoc's output never meets our -Werror flags.
# Snappy::snappy is found by the top-level CMakeLists.txt (the fakes decode push bodies too).
nodewarden_proto_library(nodewarden_loki_proto exporters/loki/push.proto)

# libdeflate: the JSON push body's gzip (loki_json_body), about 1.5x zlib's fastest level.
pkg_check_modules(LIBDEFLATE REQUIRED IMPORTED_TARGET libdeflate)
target_link_libraries(nodewarden_exporters PRIVATE Snappy::snappy CURL::libcurl
                      nlohmann_json::nlohmann_json PkgConfig::LIBDEFLATE)
