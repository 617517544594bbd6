# SPDX-License-Identifier: Apache-2.0
# bh_add_bpf_skeleton(NAME SOURCE DEPENDS...)
#
# Compiles SOURCE (a bpf/*.bpf.c file) with clang -target bpf into NAME.bpf.o in the build tree and
# generates NAME.skel.h from it with `bpftool gen skeleton`. Defines an INTERFACE library NAME_skel
# whose include directory holds the skeleton, so that `target_link_libraries(x NAME_skel)` is all a
# user-space target needs. Nothing generated lands in the source tree.

find_program(BH_CLANG NAMES clang clang-14 REQUIRED)
find_program(BH_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
execute_process(COMMAND gcc -dumpmachine OUTPUT_VARIABLE BH_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64")
	set(BH_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64")
	set(BH_BPF_ARCH arm64)
else()
	set(BH_BPF_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

function(bh_add_bpf_skeleton name source)
	set(obj ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o)
	set(skel_dir ${CMAKE_CURRENT_BINARY_DIR}/skel)
	set(skel ${skel_dir}/${name}.skel.h)
	set(flags -g -O2 -target bpf -D__TARGET_ARCH_${BH_BPF_ARCH} -Wall -Wextra -Werror
		-I/usr/include/${BH_MULTIARCH} -I${CMAKE_CURRENT_SOURCE_DIR})
	if(BH_BPF_DEBUG)
		list(APPEND flags -DBH_BPF_DEBUG=1)
	endif()
	add_custom_command(OUTPUT ${obj}
		COMMAND ${BH_CLANG} ${flags} -c ${CMAKE_CURRENT_SOURCE_DIR}/${source} -o ${obj}
		DEPENDS ${source} ${ARGN}
		COMMENT "BPF ${source}" VERBATIM)
	add_custom_command(OUTPUT ${skel}
		COMMAND ${CMAKE_COMMAND} -E make_directory ${skel_dir}
		COMMAND ${BH_BPFTOOL} gen skeleton ${obj} name ${name} > ${skel}
		DEPENDS ${obj}
		COMMENT "skeleton ${name}.skel.h" VERBATIM)
	add_custom_target(${name}_skel_gen DEPENDS ${skel})
	add_library(${name}_skel INTERFACE)
	add_dependencies(${name}_skel ${name}_skel_gen)
	target_include_directories(${name}_skel INTERFACE ${skel_dir} ${CMAKE_CURRENT_SOURCE_DIR})
	set_property(GLOBAL PROPERTY ${name}_BPF_OBJECT ${obj})
endfunction()
