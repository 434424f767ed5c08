# The Loki exporter's dependencies: protobuf (push.proto compiled with protoc at build time),
# snappy (the push body's compression) and libcurl (the transport). Included by
# exporters/CMakeLists.txt after nodewarden_exporters exists.
#
# What a reader gets wrong: the generated push.pb.cc is compiled in its own library without
# nodewarden_warnings, and its folder is a SYSTEM include, so protoc's output never meets our
# -Werror flags; the exporter links it PRIVATE, so only code that asks for nodewarden_loki_proto
# (the Loki tests and fake) sees the generated classes.
# Snappy::snappy is found by the top-level CMakeLists.txt (the pipeline encodes push bodies too).
nodewarden_proto_library(nodewarden_loki_proto exporters/loki/push.proto)

target_link_libraries(nodewarden_exporters PRIVATE nodewarden_loki_proto Snappy::snappy CURL::libcurl
                      nlohmann_json::nlohmann_json)
