# Script mode (cmake -P): writes OUTPUT, a C++ source holding every file under TEMPLATE_DIR
# (templates/<name>/<file>) as a raw string literal, for `strowger init --template`.
#   cmake -DTEMPLATE_DIR=... -DOUTPUT=... -P EmbedTemplates.cmake
file(GLOB TEMPLATE_NAMES RELATIVE ${TEMPLATE_DIR} ${TEMPLATE_DIR}/*)
list(SORT TEMPLATE_NAMES)
set(BODY "")
foreach(NAME ${TEMPLATE_NAMES})
  if(NOT IS_DIRECTORY ${TEMPLATE_DIR}/${NAME})
    continue()
  endif()
  file(GLOB FILES RELATIVE ${TEMPLATE_DIR}/${NAME} ${TEMPLATE_DIR}/${NAME}/*)
  list(SORT FILES)
  foreach(FILE ${FILES})
    file(READ ${TEMPLATE_DIR}/${NAME}/${FILE} CONTENT)
    string(FIND "${CONTENT}" ")stgtpl\"" CLASH)
    if(NOT CLASH EQUAL -1)
      message(FATAL_ERROR "${NAME}/${FILE} contains the raw string delimiter")
    endif()
    string(APPEND BODY "        {\"${NAME}\", \"${FILE}\", R\"stgtpl(${CONTENT})stgtpl\"},\n")
  endforeach()
endforeach()
set(SOURCE "// Generated from templates/ by cmake/EmbedTemplates.cmake: do not edit.
#include \"cli/templates.hpp\"

namespace strowger::cli {

const std::vector<TemplateFile>& TemplateFiles() {
    static const std::vector<TemplateFile> files = {
${BODY}    };
    return files;
}

}  // namespace strowger::cli
")
# Rewritten only when it changes, so an unchanged template does not rebuild the CLI.
if(EXISTS ${OUTPUT})
  file(READ ${OUTPUT} OLD)
  if(OLD STREQUAL SOURCE)
    return()
  endif()
endif()
file(WRITE ${OUTPUT} "${SOURCE}")
