#ifndef ROLLGATE_CSPAWN_H
#define ROLLGATE_CSPAWN_H
/* The only place glibc's posix_spawn extensions (behind _GNU_SOURCE, which Swift's Glibc
   module does not see) are touched. */
#include <spawn.h>

/* Closes every descriptor from `lowest` up in the spawned child: a hook inherits only
   stdin, stdout and stderr, whatever else the server (or its parent) has open.
   Returns 0 or an errno. */
int rollgate_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);
#endif
