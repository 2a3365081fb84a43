# Builds the single-precision runtime's archive (docs/precision.md): the same
# sources as the double one, compiled with ND_REAL_F32, and every symbol those
# objects define renamed NAME -> NAME${SUFFIX} (both the definitions and the
# objects' own references to them), so that nodec links both runtimes and the
# double one keeps its names. References to anything else (libc, LAPACK, the
# compiler) are left alone. Run as:
#   cmake -DOBJECTS="a.o|b.o" -DOUT=lib.a -DSUFFIX=_f32 -DNM=nm -DOBJCOPY=objcopy -DAR=ar -P this
string(REPLACE "|" ";" objects "${OBJECTS}")
set(symbols "")
foreach(obj IN LISTS objects)
  execute_process(COMMAND ${NM} -g --defined-only -P "${obj}" OUTPUT_VARIABLE listing
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NM} failed on ${obj}")
  endif()
  # nm -P: one "NAME TYPE VALUE SIZE" line per symbol
  string(REPLACE "\n" ";" lines "${listing}")
  foreach(line IN LISTS lines)
    if(line MATCHES "^([^ ]+) ")
      string(APPEND symbols "${CMAKE_MATCH_1} ${CMAKE_MATCH_1}${SUFFIX}\n")
    endif()
  endforeach()
endforeach()
get_filename_component(dir "${OUT}" DIRECTORY)
set(work "${dir}/suffixed${SUFFIX}")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}")
file(WRITE "${work}/map.txt" "${symbols}")
set(renamed "")
set(i 0)
foreach(obj IN LISTS objects)
  get_filename_component(base "${obj}" NAME)
  set(out "${work}/${i}_${base}")
  execute_process(COMMAND ${OBJCOPY} "--redefine-syms=${work}/map.txt" "${obj}" "${out}"
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${OBJCOPY} failed on ${obj}")
  endif()
  list(APPEND renamed "${out}")
  math(EXPR i "${i} + 1")
endforeach()
file(REMOVE "${OUT}")
execute_process(COMMAND ${AR} rcs "${OUT}" ${renamed} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${AR} failed writing ${OUT}")
endif()
