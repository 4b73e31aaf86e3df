# rewrite_launches.cmake — turns one CUDA source into host C++ for
# libfp8_cuda_emu; the only CUDA syntax in libfp8/src/cuda/*.cu is the launch:
#   kernel<T><<<grid, block, smem, stream>>>(args);
# becomes
#   ::fp8emu::launch(__FILE__, __LINE__, "kernel<T>", kernel<T>, grid, block, smem, stream)(args);
# Lines keep their numbers and a #line directive names the original file, so
# compiler messages, __FILE__/__LINE__ and the emulator's launch sites point
# at the .cu. A launch this cannot rewrite (say, a kernel named through nested
# template arguments) stops the build with its line, rather than compiling to
# something else.
#   cmake -DIN=path/to/x.cu -DOUT=path/to/x.cpp -P rewrite_launches.cmake
if(NOT IN OR NOT OUT)
  message(FATAL_ERROR "usage: cmake -DIN=<file.cu> -DOUT=<file.cpp> -P rewrite_launches.cmake")
endif()
file(READ "${IN}" src)
# kernel name: an identifier (with ::), then optional template arguments
# without nesting, newlines or semicolons; whitespace before <<< is kept.
string(REGEX REPLACE
  "([A-Za-z_][A-Za-z0-9_:]*(<[^<>;\n]*>)?)([ \t\r\n]*)<<<"
  "::fp8emu::launch(__FILE__, __LINE__, \"\\1\", \\1,\\3" src "${src}")
string(REGEX REPLACE ">>>([ \t\r\n]*)\\(" ")\\1(" src "${src}")
string(FIND "${src}" "<<<" left)
if(NOT left EQUAL -1)
  string(SUBSTRING "${src}" 0 ${left} before)
  string(REGEX MATCHALL "\n" newlines "${before}")
  list(LENGTH newlines line)
  math(EXPR line "${line} + 1")
  message(FATAL_ERROR "${IN}:${line}: a kernel launch the emulator build cannot rewrite "
                      "(write it as name<args><<<grid, block, smem, stream>>>(...))")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${src}")
file(RENAME "${OUT}.tmp" "${OUT}")
