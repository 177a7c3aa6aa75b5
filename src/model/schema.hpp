// The JSON Schema (draft 2020-12) of the workflow format, both forms, generated from the
// loader's field tables (fields.hpp): `strowger schema`, committed as
// docs/schema/workflow.schema.json. Editors (VS Code's YAML extension, JetBrains) complete and
// check a workflow with it; `$schema` and `x-` fields are allowed by both.
#pragma once

#include <string>

namespace strowger::model {

// The schema, pretty-printed (two-space indent), ending in a newline.
std::string WorkflowJsonSchema();

// Fields of the loader's tables that the schema has no type for ("step.foo"): empty when the
// two agree (model_test checks it).
std::string FieldsWithoutSchemaType();

}  // namespace strowger::model
