# The remote-write exporter's dependencies: protobuf (remote.proto compiled with protoc at build
# time), snappy (the request's block compression) and libcurl. Included by exporters/CMakeLists.txt
# after nodewarden_exporters exists, like loki/loki.cmake.
#
# What a reader gets wrong: the generated remote.pb.cc gets its own library without our warning
# flags, and its folder is a SYSTEM include; the exporter links it PRIVATE, so only code that asks
# for nodewarden_remote_write_proto (the tests) sees the generated classes.
find_package(Protobuf REQUIRED)

set(NODEWARDEN_PROTO_OUT ${PROJECT_BINARY_DIR}/generated)
set(NODEWARDEN_REMOTE_WRITE_PB ${NODEWARDEN_PROTO_OUT}/exporters/remote_write/remote.pb)
add_custom_command(
  OUTPUT ${NODEWARDEN_REMOTE_WRITE_PB}.cc ${NODEWARDEN_REMOTE_WRITE_PB}.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${NODEWARDEN_PROTO_OUT}
  COMMAND protobuf::protoc --cpp_out=${NODEWARDEN_PROTO_OUT} -I${PROJECT_SOURCE_DIR}
          -I${Protobuf_INCLUDE_DIRS} ${PROJECT_SOURCE_DIR}/exporters/remote_write/remote.proto
  DEPENDS ${PROJECT_SOURCE_DIR}/exporters/remote_write/remote.proto protobuf::protoc
  COMMENT "protoc exporters/remote_write/remote.proto"
  VERBATIM)
add_library(nodewarden_remote_write_proto STATIC ${NODEWARDEN_REMOTE_WRITE_PB}.cc)
target_include_directories(nodewarden_remote_write_proto SYSTEM PUBLIC ${NODEWARDEN_PROTO_OUT})
target_link_libraries(nodewarden_remote_write_proto PUBLIC protobuf::libprotobuf)
set_target_properties(nodewarden_remote_write_proto PROPERTIES POSITION_INDEPENDENT_CODE ON)

target_link_libraries(nodewarden_exporters PRIVATE nodewarden_remote_write_proto Snappy::snappy)
