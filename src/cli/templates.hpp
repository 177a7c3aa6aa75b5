// The workflow templates of `strowger init --template NAME` (templates/<name>/ in the source
// tree, embedded at build time by cmake/EmbedTemplates.cmake): each a runnable DAG workflow
// `<name>.yaml` and its scripted provider file `<name>.replies.yaml`.
#pragma once

#include <string_view>
#include <vector>

namespace strowger::cli {

struct TemplateFile {
    std::string_view template_name;
    std::string_view file_name;
    std::string_view content;
};

// Every template's files, by template name then file name.
const std::vector<TemplateFile>& TemplateFiles();

}  // namespace strowger::cli
