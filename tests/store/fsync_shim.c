/* LD_PRELOAD shim for the fsync-order test: reports every fsync/fdatasync as "SYNC <path>" on
 * stdout (one write(2), so it is ordered with the helper's "ACK n" lines), then calls the real
 * function. Plain C, built without sanitizers. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void shim_report(int fd) {
  char link[64];
  char path[4096];
  char line[4200];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n < 0) n = 0;
  path[n] = 0;
  int len = snprintf(line, sizeof line, "SYNC %s\n", path);
  if (len > 0) {
    ssize_t w = write(1, line, (size_t)len);
    (void)w;
  }
}

int fsync(int fd) {
  static int (*real)(int) = 0;
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  int rc = real(fd);
  shim_report(fd);
  return rc;
}

int fdatasync(int fd) {
  static int (*real)(int) = 0;
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  int rc = real(fd);
  shim_report(fd);
  return rc;
}
