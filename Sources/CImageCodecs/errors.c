#include "cimagecodecs.h"
#include <stdio.h>
#include <string.h>

static __thread char last_error[512];

const char *mc_last_error(void) { return last_error; }

void mc_set_error(const char *message) {
    snprintf(last_error, sizeof last_error, "%s", message ? message : "unknown error");
}
