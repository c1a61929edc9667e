#ifndef ROLLGATE_CYAML_SHIM_H
#define ROLLGATE_CYAML_SHIM_H
/* libyaml (Debian's libyaml-dev): the YAML 1.1 parser the config is read with. */
#include <yaml.h>
#endif
