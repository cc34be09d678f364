// pkg-config's -I (Package.swift) finds libpq-fe.h wherever the platform keeps it; without it (a
// build started while ci/test still installs libpq-dev and pkg-config) Debian's place is used.
#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif
