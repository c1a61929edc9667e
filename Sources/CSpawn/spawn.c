#define _GNU_SOURCE
#include "CSpawn.h"
#include <sys/prctl.h>

int rollgate_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

int rollgate_process_not_dumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
