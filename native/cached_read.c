/*
 * Reads a small file on the calling thread when the kernel can answer from its caches alone, and
 * says so when it cannot, so the caller reads it through libuv's threadpool instead.
 *
 * Through node:fs, reading a 71-byte tag link is four threadpool round trips (open, fstat, read,
 * close): under load, handing them over and waking the event loop for each cost three times the
 * CPU of the rest of a manifest GET (83 µs of CPU per GET against 27 with the file read in
 * place). Reading in place is only safe when it cannot wait for a disk or a network: the path is
 * resolved with openat2(RESOLVE_CACHED), which fails with EAGAIN unless every component is in the
 * dentry cache without revalidation (an NFS mount's usually is not), and the bytes are read with
 * preadv2(RWF_NOWAIT), which fails with EAGAIN unless they are in the page cache. fstat of an open
 * descriptor and close of one only read do no I/O.
 *
 *   read(path, max)   a Buffer with the file's content; null when the path is not a regular file;
 *                     undefined when the kernel would have to wait (or the file is larger than max,
 *                     or this kernel has no openat2 or no RWF_NOWAIT for this filesystem): read it
 *                     the usual way. Other errors (ENOENT, ENOTDIR, EACCES, ENAMETOOLONG, ELOOP)
 *                     are thrown as an Error carrying Node's `code`, `errno`, `syscall` and `path`.
 *
 * A kernel without openat2 (before 5.6) or RESOLVE_CACHED (before 5.12), or a seccomp filter that
 * refuses openat2, is found when the addon loads, and read answers undefined at once from then on;
 * so is a filesystem without RWF_NOWAIT (EOPNOTSUPP), since a process reads one storage root. EPERM
 * from a call is left to the usual way, which reports a real one.
 */
#define NAPI_VERSION 8
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "errno_error.h"

/* openat2's argument, a stable ABI; older kernel headers lack <linux/openat2.h> and SYS_openat2. */
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#else
struct open_how {
  uint64_t flags;
  uint64_t mode;
  uint64_t resolve;
};
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_CACHED
#define RESOLVE_CACHED 0x20
#endif
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

/* Paths are absolute paths under a storage root: far below this. */
#define MAX_PATH_BYTES 4096

static bool unsupported = false;

static napi_value undefined_value(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

/* Throws errno as node:fs would and returns NULL. */
static napi_value throw_errno(napi_env env, int err, const char* syscall, const char* path) {
  napi_throw(env, errno_error(env, err, syscall, path));
  return NULL;
}

static napi_value read_cached(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char path[MAX_PATH_BYTES + 1];
  size_t path_length;
  int64_t max;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_length) != napi_ok ||
      napi_get_value_int64(env, argv[1], &max) != napi_ok) {
    napi_throw_type_error(env, NULL, "cached_read.read(path: string, max: number)");
    return NULL;
  }
  /* Cut short: not the path asked for. The usual way reports what it is. */
  if (unsupported || path_length >= MAX_PATH_BYTES || strlen(path) != path_length) return undefined_value(env);

  /* O_NONBLOCK: a FIFO at the path must not make the open wait for a writer. */
  struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, .resolve = RESOLVE_CACHED};
  int fd;
  do fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    /* EPERM: a seccomp filter that refuses openat2 (older container profiles) says so, where a
     * read-only open says EACCES; the usual way reports a real one. */
    if (errno == EAGAIN || errno == EPERM) return undefined_value(env);
    /* No openat2, or one without RESOLVE_CACHED. */
    if (errno == ENOSYS || errno == EINVAL || errno == E2BIG) {
      unsupported = true;
      return undefined_value(env);
    }
    return throw_errno(env, errno, "open", path);
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, err, "fstat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    napi_value null_value;
    napi_get_null(env, &null_value);
    return null_value;
  }
  if (st.st_size > max) {
    close(fd);
    return undefined_value(env);
  }
  size_t size = (size_t)st.st_size;
  void* data;
  napi_value buffer;
  if (napi_create_buffer(env, size, &data, &buffer) != napi_ok) {
    close(fd);
    return NULL;
  }
  size_t filled = 0;
  while (filled < size) {
    struct iovec part = {.iov_base = (char*)data + filled, .iov_len = size - filled};
    ssize_t n = preadv2(fd, &part, 1, (off_t)filled, RWF_NOWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      if (err == EAGAIN || err == EPERM) return undefined_value(env);
      if (err == EOPNOTSUPP || err == ENOSYS || err == EINVAL) {
        unsupported = true;
        return undefined_value(env);
      }
      return throw_errno(env, err, "read", path);
    }
    if (n == 0) break;
    filled += (size_t)n;
  }
  close(fd);
  if (filled == size) return buffer;
  /* Shorter than fstat said (cut meanwhile): what was read. */
  napi_value copy;
  void* copied;
  if (napi_create_buffer_copy(env, filled, data, &copied, &copy) != napi_ok) return NULL;
  return copy;
}

NAPI_MODULE_INIT() {
  /* Where openat2 is missing, or refused by a seccomp filter (EPERM), every read would pay a failed
   * syscall first: find out once. "/" is always in the dentry cache. */
  struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_DIRECTORY, .resolve = RESOLVE_CACHED};
  int probe = (int)syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
  if (probe >= 0) close(probe);
  else if (errno != EAGAIN) unsupported = true;
  napi_value fn;
  if (napi_create_function(env, "read", NAPI_AUTO_LENGTH, read_cached, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "read", fn) != napi_ok) {
    return NULL;
  }
  return exports;
}
