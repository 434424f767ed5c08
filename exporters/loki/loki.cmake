# The Loki exporter's dependencies: protobuf (push.proto compiled with protoc at build time),
# snappy (the push body's compression) and libcurl (the transport). Included by
# exporters/CMakeLists.txt after nodewarden_exporters exists.
#
# What a reader gets wrong: the generated push.pb.cc is compiled in its own library without
# nodewarden_warnings, and its folder is a SYSTEM include, so protoc's output never meets our
# -Werror flags; the exporter links it PRIVATE, so only code that asks for nodewarden_loki_proto
# (the Loki tests and fake) sees the generated classes.
find_package(Protobuf REQUIRED)  # CMake's FindProtobuf: Debian's 3.21 ships no CMake config
# Snappy::snappy is found by the top-level CMakeLists.txt (the pipeline encodes push bodies too).

# Generated as exporters/loki/push.pb.{h,cc} under generated/, so code includes it by the same
# project-relative path as every other header.
set(NODEWARDEN_PROTO_OUT ${PROJECT_BINARY_DIR}/generated)
set(NODEWARDEN_LOKI_PB ${NODEWARDEN_PROTO_OUT}/exporters/loki/push.pb)
add_custom_command(
  OUTPUT ${NODEWARDEN_LOKI_PB}.cc ${NODEWARDEN_LOKI_PB}.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${NODEWARDEN_PROTO_OUT}
  COMMAND protobuf::protoc --cpp_out=${NODEWARDEN_PROTO_OUT} -I${PROJECT_SOURCE_DIR}
          -I${Protobuf_INCLUDE_DIRS} ${PROJECT_SOURCE_DIR}/exporters/loki/push.proto
  DEPENDS ${PROJECT_SOURCE_DIR}/exporters/loki/push.proto protobuf::protoc
  COMMENT "protoc exporters/loki/push.proto"
  VERBATIM)
add_library(nodewarden_loki_proto STATIC ${NODEWARDEN_LOKI_PB}.cc)
target_include_directories(nodewarden_loki_proto SYSTEM PUBLIC ${NODEWARDEN_PROTO_OUT})
target_link_libraries(nodewarden_loki_proto PUBLIC protobuf::libprotobuf)
set_target_properties(nodewarden_loki_proto PROPERTIES POSITION_INDEPENDENT_CODE ON)

target_link_libraries(nodewarden_exporters PRIVATE nodewarden_loki_proto Snappy::snappy CURL::libcurl
                      nlohmann_json::nlohmann_json)
