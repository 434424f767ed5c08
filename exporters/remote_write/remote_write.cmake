# The remote-write exporter's dependencies: protobuf (remote.proto compiled with protoc at build
# time), snappy (the request's block compression) and libcurl. Included by exporters/CMakeLists.txt
# after nodewarden_exporters exists, like loki/loki.cmake.
#
# What a reader gets wrong: the generated remote.pb.cc gets its own library without our warning
# flags, and its folder is a SYSTEM include; the exporter links it PRIVATE, so only code that asks
# for nodewarden_remote_write_proto (the tests) sees the generated classes.
nodewarden_proto_library(nodewarden_remote_write_proto exporters/remote_write/remote.proto LITE)

target_link_libraries(nodewarden_exporters PRIVATE nodewarden_remote_write_proto Snappy::snappy)
