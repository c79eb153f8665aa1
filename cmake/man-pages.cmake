# SPDX-License-Identifier: MIT
# Lay out the man pages for installing: cmake -DSRC=docs/man -DOUT=dir
# -DVERSION=x.y.z [-DEXCLUDE=page.3;...] -P man-pages.cmake.
#
# Every page of docs/man is copied to OUT/manN/ with the version of this
# build in its .TH line (so the version is written once, in CMakeLists.txt).
# Then every function a section 3 page declares in its SYNOPSIS, and every
# mp_ name its NAME line lists, gets a link page (".so man3/PAGE.3") under
# its own name, so that `man mp_queue_put` opens mp_queue(3).  The links
# are made here, from the pages, because the API grows: a function added to
# a page's SYNOPSIS gets its link at the next build.
cmake_minimum_required(VERSION 3.20)

file(REMOVE_RECURSE "${OUT}")
file(GLOB pages "${SRC}/*.[0-9]")
# -DEXCLUDE="a.3;b.3": pages of what this build leaves out (libmultiproc-mpi).
foreach(x ${EXCLUDE})
  list(REMOVE_ITEM pages "${SRC}/${x}")
endforeach()
list(SORT pages)
set(linked "")
set(real "")
foreach(page ${pages})
  get_filename_component(file "${page}" NAME)
  get_filename_component(stem "${page}" NAME_WE)
  string(REGEX REPLACE ".*\\." "" sec "${file}")
  file(READ "${page}" text)
  string(REGEX REPLACE "(\n?\\.TH [^\n]*\")multiproc [0-9.]+\""
    "\\1multiproc ${VERSION}\"" text "${text}")
  file(WRITE "${OUT}/man${sec}/${file}" "${text}")
  list(APPEND linked "${stem}")

  if(NOT sec STREQUAL "3" OR text MATCHES "^\\.so ")
    continue()
  endif()
  # NAME: the names before "\-"; SYNOPSIS: every "mp_name(".
  set(names "")
  if(text MATCHES "\n\\.SH NAME\n([^\n]*(\n[^.][^\n]*)*)")
    string(REGEX REPLACE "\\\\-.*" "" head "${CMAKE_MATCH_1}")
    string(REGEX MATCHALL "mp_[a-z0-9_]+" names "${head}")
  endif()
  set(calls "")
  string(FIND "${text}" "\n.SH SYNOPSIS" s)
  if(s GREATER -1)
    string(SUBSTRING "${text}" ${s} -1 rest)
    string(SUBSTRING "${rest}" 1 -1 rest)
    string(FIND "${rest}" "\n.SH " e)
    string(SUBSTRING "${rest}" 0 ${e} synopsis)
    string(REGEX MATCHALL "mp_[a-z0-9_]+\\(" calls "${synopsis}")
    string(REPLACE "(" "" calls "${calls}")
  endif()
  set(named_${stem} ${names})
  set(declared_${stem} ${calls})
  list(APPEND real "${stem}")
endforeach()

# A name goes to the page that lists it in NAME, else to the first page (in
# file order) that declares it; a name with a page of its own keeps it.
foreach(kind named declared)
  foreach(stem ${real})
    foreach(name ${${kind}_${stem}})
      list(FIND linked "${name}" seen)
      if(seen GREATER -1)
        continue()
      endif()
      list(APPEND linked "${name}")
      file(WRITE "${OUT}/man3/${name}.3" ".so man3/${stem}.3\n")
    endforeach()
  endforeach()
endforeach()
file(TOUCH "${OUT}/.stamp")
