# SPDX-License-Identifier: Apache-2.0
# bh_add_proto(NAME PROTO)
#
# Runs protoc-c on PROTO into the build tree and builds the generated C as a static library NAME,
# linked against libprotobuf-c. Include the header as "bulkhead.pb-c.h".

find_program(BH_PROTOC_C NAMES protoc-c protoc-gen-c REQUIRED)

function(bh_add_proto name proto)
	get_filename_component(base ${proto} NAME_WE)
	get_filename_component(abs ${proto} ABSOLUTE)
	get_filename_component(dir ${abs} DIRECTORY)
	set(out ${CMAKE_CURRENT_BINARY_DIR}/gen)
	add_custom_command(OUTPUT ${out}/${base}.pb-c.c ${out}/${base}.pb-c.h
		COMMAND ${CMAKE_COMMAND} -E make_directory ${out}
		COMMAND ${BH_PROTOC_C} --proto_path=${dir} --c_out=${out} ${abs}
		DEPENDS ${abs}
		COMMENT "protoc-c ${base}.proto" VERBATIM)
	add_library(${name} STATIC ${out}/${base}.pb-c.c)
	target_include_directories(${name} PUBLIC ${out})
	target_link_libraries(${name} PUBLIC PkgConfig::PROTOBUFC)
	set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
	# Generated code is not ours to lint.
	target_compile_options(${name} PRIVATE -w)
endfunction()
