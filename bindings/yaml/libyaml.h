/*
** libyaml.h — libyaml, resolved when opsh._yaml is first required (engine/dynlib.c says why).
** Every yaml_* call of the binding goes through the opsh_libyaml table; the types come from
** yaml.h itself (__typeof__).
*/
#ifndef opsh_yaml_libyaml_h
#define opsh_yaml_libyaml_h

#include <yaml.h>
#include "opsh.h"

#define OPSH_LIBYAML_FUNCS(X) \
  X(yaml_get_version_string) X(yaml_parser_initialize) X(yaml_parser_set_input_string) \
  X(yaml_parser_parse) X(yaml_parser_delete) X(yaml_event_delete) X(yaml_emitter_initialize) \
  X(yaml_emitter_delete) X(yaml_emitter_emit) X(yaml_emitter_flush) X(yaml_emitter_set_break) \
  X(yaml_emitter_set_indent) X(yaml_emitter_set_output) X(yaml_emitter_set_unicode) \
  X(yaml_emitter_set_width) X(yaml_stream_start_event_initialize) \
  X(yaml_stream_end_event_initialize) X(yaml_document_start_event_initialize) \
  X(yaml_document_end_event_initialize) X(yaml_mapping_start_event_initialize) \
  X(yaml_mapping_end_event_initialize) X(yaml_sequence_start_event_initialize) \
  X(yaml_sequence_end_event_initialize) X(yaml_scalar_event_initialize)

#define OPSH_LIBYAML_SLOT(name) __typeof__(name) *name;
struct opsh_libyaml_api { OPSH_LIBYAML_FUNCS(OPSH_LIBYAML_SLOT) };
extern struct opsh_libyaml_api opsh_libyaml;

/* [-0, +0, v] load libyaml (once); raises {kind="dependency"} when it cannot */
void opsh_libyaml_load(lua_State *L);

#ifndef OPSH_LIBYAML_REAL_NAMES
#define yaml_get_version_string opsh_libyaml.yaml_get_version_string
#define yaml_parser_initialize opsh_libyaml.yaml_parser_initialize
#define yaml_parser_set_input_string opsh_libyaml.yaml_parser_set_input_string
#define yaml_parser_parse opsh_libyaml.yaml_parser_parse
#define yaml_parser_delete opsh_libyaml.yaml_parser_delete
#define yaml_event_delete opsh_libyaml.yaml_event_delete
#define yaml_emitter_initialize opsh_libyaml.yaml_emitter_initialize
#define yaml_emitter_delete opsh_libyaml.yaml_emitter_delete
#define yaml_emitter_emit opsh_libyaml.yaml_emitter_emit
#define yaml_emitter_flush opsh_libyaml.yaml_emitter_flush
#define yaml_emitter_set_break opsh_libyaml.yaml_emitter_set_break
#define yaml_emitter_set_indent opsh_libyaml.yaml_emitter_set_indent
#define yaml_emitter_set_output opsh_libyaml.yaml_emitter_set_output
#define yaml_emitter_set_unicode opsh_libyaml.yaml_emitter_set_unicode
#define yaml_emitter_set_width opsh_libyaml.yaml_emitter_set_width
#define yaml_stream_start_event_initialize opsh_libyaml.yaml_stream_start_event_initialize
#define yaml_stream_end_event_initialize opsh_libyaml.yaml_stream_end_event_initialize
#define yaml_document_start_event_initialize opsh_libyaml.yaml_document_start_event_initialize
#define yaml_document_end_event_initialize opsh_libyaml.yaml_document_end_event_initialize
#define yaml_mapping_start_event_initialize opsh_libyaml.yaml_mapping_start_event_initialize
#define yaml_mapping_end_event_initialize opsh_libyaml.yaml_mapping_end_event_initialize
#define yaml_sequence_start_event_initialize opsh_libyaml.yaml_sequence_start_event_initialize
#define yaml_sequence_end_event_initialize opsh_libyaml.yaml_sequence_end_event_initialize
#define yaml_scalar_event_initialize opsh_libyaml.yaml_scalar_event_initialize
#endif

#endif
