#ifndef ROLLGATE_CSPAWN_H
#define ROLLGATE_CSPAWN_H
/* The only place glibc's posix_spawn extensions and prctl (behind _GNU_SOURCE or variadic,
   which Swift's Glibc module does not import) are touched. */
#include <spawn.h>

/* Closes every descriptor from `lowest` up in the spawned child: a hook inherits only
   stdin, stdout and stderr, whatever else the server (or its parent) has open.
   Returns 0 or an errno. */
int rollgate_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);

/* prctl(PR_SET_DUMPABLE, 0): a hook running as the same user can then neither read
   /proc/<rollgate>/environ, mem or fd nor attach a debugger, and no core dump holds the
   secrets. Children are dumpable again after exec (they are other programs).
   Returns 0 or -1 with errno. */
int rollgate_process_not_dumpable(void);
#endif
