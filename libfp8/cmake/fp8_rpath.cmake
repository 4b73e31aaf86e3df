# fp8_rpath.cmake — run paths of our libraries, all relative to the library's own
# folder ($ORIGIN), never a path of the build machine, so a checkout or an installed
# package can move (docs/architecture.md, "Finding the native libraries").
#
#   fp8_relative_rpath(<target> <libdir>...)
#
# The run path is $ORIGIN, plus $ORIGIN/<relative path> for each <libdir> that lies
# inside the repository together with the output folder (the pip wheels in .deps/).
# Folders outside the repository (a system CUDA toolkit) are left to the system
# linker's configuration; at run time src/ffi/runtime_deps.ts also looks in
# $FP8_CUBLASLT_ROOT / $FP8_NCCL_ROOT and a Python environment's nvidia/*/lib.
get_filename_component(FP8_RPATH_REPO_ROOT "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

function(fp8_relative_rpath target)
  get_target_property(_out ${target} LIBRARY_OUTPUT_DIRECTORY)
  if(NOT _out)
    set(_out "${CMAKE_CURRENT_BINARY_DIR}")
  endif()
  get_filename_component(_out "${_out}" ABSOLUTE)
  set(_rpath "\$ORIGIN")
  foreach(_dir IN LISTS ARGN)
    get_filename_component(_dir "${_dir}" ABSOLUTE)
    string(FIND "${_dir}/" "${FP8_RPATH_REPO_ROOT}/" _in_repo)
    string(FIND "${_out}/" "${FP8_RPATH_REPO_ROOT}/" _out_in_repo)
    if(_in_repo EQUAL 0 AND _out_in_repo EQUAL 0)
      file(RELATIVE_PATH _rel "${_out}" "${_dir}")
      list(APPEND _rpath "\$ORIGIN/${_rel}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES _rpath)
  # The build tree's run path is exactly this list (no link folders added by CMake).
  set_target_properties(${target} PROPERTIES
    BUILD_WITH_INSTALL_RPATH ON
    INSTALL_RPATH "${_rpath}"
    INSTALL_RPATH_USE_LINK_PATH OFF)
endfunction()
