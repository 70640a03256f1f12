/*
** edit.h — libedit, resolved when opsh._repl is first required (engine/dynlib.c says why): it
** brings libtinfo, libbsd and libmd, which a script never needs. Every libedit function and
** variable repl.c uses goes through the opsh_edit table; the types come from libedit's own
** header (__typeof__). A variable's slot holds its address, so `rl_point = 0` still reads.
*/
#ifndef opsh_edit_h
#define opsh_edit_h

#include <stdio.h>
#include <editline/readline.h>
#include "opsh.h"

#define OPSH_EDIT_SYMBOLS(X) \
  X(add_history) X(rl_callback_handler_install) X(rl_callback_handler_remove) \
  X(rl_callback_read_char) X(rl_deprep_terminal) X(rl_forced_update_display) X(rl_get_screen_size) \
  X(rl_initialize) X(rl_prep_terminal) X(rl_resize_terminal) \
  X(rl_attempted_completion_function) X(rl_attempted_completion_over) \
  X(rl_basic_word_break_characters) X(rl_catch_signals) X(rl_catch_sigwinch) \
  X(rl_completion_append_character) X(rl_completion_query_items) X(rl_instream) X(rl_line_buffer) \
  X(rl_outstream) X(rl_point) X(rl_readline_name)

#define OPSH_EDIT_SLOT(name) __typeof__(name) *name;
struct opsh_edit_api { OPSH_EDIT_SYMBOLS(OPSH_EDIT_SLOT) };
extern struct opsh_edit_api opsh_edit;

/* [-0, +0, v] load libedit (once); raises {kind="dependency"} when it cannot */
void opsh_edit_load(lua_State *L);

#ifndef OPSH_EDIT_REAL_NAMES
#define add_history opsh_edit.add_history
#define rl_callback_handler_install opsh_edit.rl_callback_handler_install
#define rl_callback_handler_remove opsh_edit.rl_callback_handler_remove
#define rl_callback_read_char opsh_edit.rl_callback_read_char
#define rl_deprep_terminal opsh_edit.rl_deprep_terminal
#define rl_forced_update_display opsh_edit.rl_forced_update_display
#define rl_get_screen_size opsh_edit.rl_get_screen_size
#define rl_initialize opsh_edit.rl_initialize
#define rl_prep_terminal opsh_edit.rl_prep_terminal
#define rl_resize_terminal opsh_edit.rl_resize_terminal
#define rl_attempted_completion_function (*opsh_edit.rl_attempted_completion_function)
#define rl_attempted_completion_over (*opsh_edit.rl_attempted_completion_over)
#define rl_basic_word_break_characters (*opsh_edit.rl_basic_word_break_characters)
#define rl_catch_signals (*opsh_edit.rl_catch_signals)
#define rl_catch_sigwinch (*opsh_edit.rl_catch_sigwinch)
#define rl_completion_append_character (*opsh_edit.rl_completion_append_character)
#define rl_completion_query_items (*opsh_edit.rl_completion_query_items)
#define rl_instream (*opsh_edit.rl_instream)
#define rl_line_buffer (*opsh_edit.rl_line_buffer)
#define rl_outstream (*opsh_edit.rl_outstream)
#define rl_point (*opsh_edit.rl_point)
#define rl_readline_name (*opsh_edit.rl_readline_name)
#endif

#endif
