/*
 * The filesystem driver's durable writes, each as one job on libuv's threadpool instead of a
 * chain of fs calls from JavaScript. Writing a link file durably took eight round trips through the
 * threadpool (open, write, fsync, close, rename, then open, fsync and close of its directory); a
 * push of one small image writes a dozen such files, and those round trips were a fifth of the
 * main thread's time under concurrent pushes. Same syscalls, same order, same guarantees:
 *
 *   put(temp, target, data, syncDir[, placeFrom, placeTo])
 *                                     open temp O_EXCL, write all, fsync if syncDir, close, rename
 *                                     onto target, fsync syncDir; the temp is removed on failure
 *   move(source, dest, syncDir[, placeFrom, placeTo])
 *                                     rename, then fsync syncDir
 *   putMakingDirectories(temp, target, data, root)
 *                                     put without syncs whose temp's missing directories (below
 *                                     or at root) are made when its open says ENOENT, then opened
 *                                     again: mkdir -p in the same job, for what need not survive a
 *                                     crash whole (an upload's startedat, markers), where node's
 *                                     recursive mkdir costs a job per level and the failed put one
 *   removeTree(path)                  rm -r of a small tree (an upload's directory) in one job,
 *                                     with nftw: files and directories removed depth first; ENOENT
 *                                     of an entry is ignored (a concurrent delete); resolves to
 *                                     false when nothing was there. Not for large trees: it holds
 *                                     one threadpool thread until done
 *   syncDirectory(dir)                fsync a directory
 *   writeHashed(fd, data, sha256State)
 *                                     write all of data at fd (opened O_APPEND), then hash it into
 *                                     the SHA-256 state (OpenSSL's SHA256_CTX, the buffer of
 *                                     native/sha256_state.c), in the same job: an upload's bytes are
 *                                     hashed on the threadpool instead of the event loop. The state
 *                                     is updated only when every byte was written, so what it has
 *                                     seen is always a prefix of the file
 *   makeStandIn(dir, root, suffix)    makes the hidden stand-in of the missing directory `dir`
 *                                     beside its highest missing ancestor below or at `root`
 *                                     (".<name>" + suffix, name cut to 200 bytes), and the levels
 *                                     below it; resolves to [standIn, top]
 *
 * With placeFrom and placeTo, a new directory's hidden stand-in holding the target is renamed
 * into place after the first rename and before the fsync (src/driver/new-directory.ts): the first
 * write into a new directory then costs one job, as a write into an existing one does. When that
 * rename fails (EEXIST, ENOTEMPTY: another writer made the directory) the error names placeFrom,
 * and the caller undoes what the stand-in holds. `placement` (true) says this build has these and
 * makeStandIn.
 *
 * move's ENOENT names the destination (path_b) when the source is there (lstat in the same job), so
 * the caller need not ask which of the two is missing with a round trip of its own.
 *
 * An empty syncDir ("") means not durable: no fsync at all. A directory that is gone by the time it
 * is synced counts as synced (a concurrent delete removed what it held). Each returns a promise
 * rejected with an Error carrying Node's `code`, `errno`, `syscall` and `path`.
 */
#define NAPI_VERSION 8
/* nftw and its FTW_DEPTH, FTW_PHYS */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <node_api.h>
#include <openssl/sha.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "errno_error.h"

typedef enum { OP_PUT, OP_MOVE, OP_SYNC_DIR, OP_STAND_IN, OP_WRITE_HASHED, OP_REMOVE_TREE } op_kind;

typedef struct {
  op_kind kind;
  char* path_a; /* put: temp; move: source; syncDirectory: the directory */
  char* path_b; /* put: target; move: destination */
  char* sync_dir; /* NULL: none */
  char* place_from; /* NULL: no placement */
  char* place_to;
  char* make_root; /* putMakingDirectories: the highest directory it may make */
  char* failed_dir; /* the directory whose mkdir failed, named by the error */
  /* makeStandIn: path_a is the directory, path_b the root, suffix the name's tail; out_* the answer */
  char* suffix;
  char* out_stand_in;
  char* out_top;
  const char* data;
  size_t length;
  napi_ref data_ref;
  /* writeHashed: the descriptor, and the hash state (kept alive by state_ref) */
  int fd;
  bool found; /* removeTree: something was there */
  SHA256_CTX* state;
  napi_ref state_ref;
  int err;
  const char* syscall;
  const char* err_path;
  napi_deferred deferred;
  napi_async_work work;
} op_t;

static int fail(op_t* op, const char* syscall, const char* path) {
  op->err = errno;
  op->syscall = syscall;
  op->err_path = path;
  return -1;
}

static int sync_directory(op_t* op, const char* dir) {
  int fd;
  do fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return errno == ENOENT ? 0 : fail(op, "open", dir);
  if (fsync(fd) != 0) {
    fail(op, "fsync", dir);
    close(fd);
    return -1;
  }
  close(fd);
  return 0;
}

/* Renames the stand-in into place, when there is one. */
static int place(op_t* op) {
  if (op->place_from == NULL || rename(op->place_from, op->place_to) == 0) return 0;
  return fail(op, "rename", op->place_from);
}

/*
 * mkdir -p of dir, never above make_root; an existing level counts as made. The error is the real
 * one of the level that failed (EROFS, ENOSPC, EACCES); ENOENT only when make_root itself is missing.
 */
static int make_directories(op_t* op, const char* dir) {
  if (mkdir(dir, 0777) == 0 || errno == EEXIST) return 0;
  if (errno == ENOENT && strcmp(dir, op->make_root) != 0 && strlen(dir) > strlen(op->make_root)) {
    char* parent = strdup(dir);
    char* slash = parent == NULL ? NULL : strrchr(parent, '/');
    if (slash != NULL && slash != parent) {
      *slash = '\0';
      int made = make_directories(op, parent);
      free(parent);
      if (made != 0) return -1;
      if (mkdir(dir, 0777) == 0 || errno == EEXIST) return 0;
    } else {
      free(parent);
      errno = ENOENT;
    }
  }
  int saved = errno;
  free(op->failed_dir);
  op->failed_dir = strdup(dir);
  errno = saved;
  return fail(op, "mkdir", op->failed_dir != NULL ? op->failed_dir : op->path_a);
}

static int open_temp(op_t* op) {
  int fd;
  do fd = open(op->path_a, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  while (fd < 0 && errno == EINTR);
  return fd;
}

static void put(op_t* op) {
  int fd = open_temp(op);
  if (fd < 0 && errno == ENOENT && op->make_root != NULL) {
    char* dir = strdup(op->path_a);
    char* slash = dir == NULL ? NULL : strrchr(dir, '/');
    if (slash == NULL || slash == dir) {
      free(dir);
      errno = ENOENT;
    } else {
      *slash = '\0';
      int made = make_directories(op, dir);
      free(dir);
      if (made != 0) return;
      fd = open_temp(op);
    }
  }
  /* Opened exclusively: when the open fails there is no temporary file to remove. */
  if (fd < 0) {
    fail(op, "open", op->path_a);
    return;
  }
  size_t done = 0;
  while (done < op->length) {
    ssize_t n = write(fd, op->data + done, op->length - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      fail(op, "write", op->path_a);
      goto remove_temp;
    }
    done += (size_t)n;
  }
  if (op->sync_dir != NULL && fsync(fd) != 0) {
    fail(op, "fsync", op->path_a);
    goto remove_temp;
  }
  if (close(fd) != 0) {
    fd = -1;
    fail(op, "close", op->path_a);
    goto remove_temp;
  }
  fd = -1;
  if (rename(op->path_a, op->path_b) != 0) {
    fail(op, "rename", op->path_a);
    goto remove_temp;
  }
  if (place(op) != 0) return;
  if (op->sync_dir != NULL) sync_directory(op, op->sync_dir);
  return;
remove_temp:
  if (fd >= 0) close(fd);
  unlink(op->path_a);
}

/* nftw's callback: the failing entry's errno, or 0 to go on. */
static int remove_entry(const char* path, const struct stat* info, int kind, struct FTW* where) {
  (void)info;
  (void)where;
  if ((kind == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT) return 0;
  return errno;
}

static void remove_tree(op_t* op) {
  struct stat info;
  if (lstat(op->path_a, &info) != 0) {
    if (errno != ENOENT) fail(op, "lstat", op->path_a);
    return;
  }
  op->found = true;
  /* FTW_DEPTH: a directory after what it holds; FTW_PHYS: links are removed, never followed. */
  int result = nftw(op->path_a, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  if (result == 0) return;
  if (result > 0) errno = result;
  else if (errno == ENOENT) return; /* removed meanwhile by a concurrent delete */
  fail(op, "rm", op->path_a);
}

static void write_hashed(op_t* op) {
  size_t done = 0;
  while (done < op->length) {
    ssize_t n = write(op->fd, op->data + done, op->length - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      fail(op, "write", NULL);
      return;
    }
    done += (size_t)n;
  }
  SHA256_Update(op->state, op->data, op->length);
}

/* mkdir that counts a directory already there as made (a level of a stand-in another call made). */
static int make_level(op_t* op, const char* path) {
  if (mkdir(path, 0777) == 0 || errno == EEXIST) return 0;
  return fail(op, "mkdir", path);
}

/*
 * Climbs from path_a until the stand-in's mkdir succeeds (ENOENT or ENOTDIR: the parent is missing
 * too), never above path_b, then makes the levels between the top and path_a inside the stand-in.
 * The same steps as new-directory.ts's fallback, in one job instead of one per level.
 */
static void make_stand_in(op_t* op) {
  char* top = strdup(op->path_a);
  size_t suffix_length = strlen(op->suffix);
  if (top == NULL) {
    errno = ENOMEM;
    fail(op, "mkdir", op->path_a);
    return;
  }
  for (;;) {
    char* slash = strrchr(top, '/');
    if (slash == NULL || slash == top) {
      errno = ENOENT;
      fail(op, "mkdir", op->path_a);
      free(top);
      return;
    }
    size_t dir_length = (size_t)(slash - top);
    size_t base_length = strlen(slash + 1);
    if (base_length > 200) base_length = 200;
    char* stand_in = malloc(dir_length + 2 + base_length + suffix_length + 1);
    if (stand_in == NULL) {
      errno = ENOMEM;
      fail(op, "mkdir", op->path_a);
      free(top);
      return;
    }
    memcpy(stand_in, top, dir_length);
    stand_in[dir_length] = '/';
    stand_in[dir_length + 1] = '.';
    memcpy(stand_in + dir_length + 2, slash + 1, base_length);
    memcpy(stand_in + dir_length + 2 + base_length, op->suffix, suffix_length + 1);
    free(op->out_stand_in);
    op->out_stand_in = stand_in;
    if (mkdir(stand_in, 0777) == 0) break;
    if ((errno != ENOENT && errno != ENOTDIR) || strcmp(top, op->path_b) == 0) {
      fail(op, "mkdir", stand_in);
      free(top);
      return;
    }
    *slash = '\0';
  }
  op->out_top = top;
  /* The levels below: stand-in + the part of path_a after top, one '/' at a time. */
  const char* rest = op->path_a + strlen(top);
  size_t stand_in_length = strlen(op->out_stand_in);
  char* level = malloc(stand_in_length + strlen(rest) + 1);
  if (level == NULL) {
    errno = ENOMEM;
    fail(op, "mkdir", op->path_a);
    return;
  }
  memcpy(level, op->out_stand_in, stand_in_length);
  for (size_t i = 1; rest[0] != '\0'; i++) {
    if (rest[i] != '/' && rest[i] != '\0') continue;
    memcpy(level + stand_in_length, rest, i);
    level[stand_in_length + i] = '\0';
    if (make_level(op, level) != 0) {
      /* err_path must outlive this frame: report the stand-in, which holds the failed level. */
      op->err_path = op->out_stand_in;
      break;
    }
    if (rest[i] == '\0') break;
  }
  free(level);
}

static void execute(napi_env env, void* data) {
  op_t* op = data;
  switch (op->kind) {
    case OP_PUT:
      put(op);
      break;
    case OP_MOVE:
      if (rename(op->path_a, op->path_b) != 0) {
        struct stat source;
        /* ENOENT with the source there: the destination's directory is what is missing. */
        bool source_there = errno == ENOENT && lstat(op->path_a, &source) == 0;
        if (source_there) errno = ENOENT;
        fail(op, "rename", source_there ? op->path_b : op->path_a);
        break;
      }
      if (place(op) != 0) break;
      if (op->sync_dir != NULL) sync_directory(op, op->sync_dir);
      break;
    case OP_SYNC_DIR:
      sync_directory(op, op->path_a);
      break;
    case OP_STAND_IN:
      make_stand_in(op);
      break;
    case OP_WRITE_HASHED:
      write_hashed(op);
      break;
    case OP_REMOVE_TREE:
      remove_tree(op);
      break;
  }
}

static void free_op(napi_env env, op_t* op) {
  if (op->data_ref) napi_delete_reference(env, op->data_ref);
  if (op->state_ref) napi_delete_reference(env, op->state_ref);
  free(op->path_a);
  free(op->path_b);
  free(op->sync_dir);
  free(op->place_from);
  free(op->place_to);
  free(op->make_root);
  free(op->failed_dir);
  free(op->suffix);
  free(op->out_stand_in);
  free(op->out_top);
  free(op);
}

static void complete(napi_env env, napi_status status, void* data) {
  op_t* op = data;
  if (status == napi_ok && op->err == 0) {
    napi_value result;
    if (op->kind == OP_STAND_IN) {
      napi_value stand_in, top;
      napi_create_array_with_length(env, 2, &result);
      napi_create_string_utf8(env, op->out_stand_in, NAPI_AUTO_LENGTH, &stand_in);
      napi_create_string_utf8(env, op->out_top, NAPI_AUTO_LENGTH, &top);
      napi_set_element(env, result, 0, stand_in);
      napi_set_element(env, result, 1, top);
    } else if (op->kind == OP_REMOVE_TREE) {
      napi_get_boolean(env, op->found, &result);
    } else {
      napi_get_undefined(env, &result);
    }
    napi_resolve_deferred(env, op->deferred, result);
  } else {
    int err = status == napi_ok ? op->err : ECANCELED;
    napi_reject_deferred(env, op->deferred, errno_error(env, err, op->syscall, op->err_path));
  }
  napi_delete_async_work(env, op->work);
  free_op(env, op);
}

/* A JS string argument as a malloc'd C string; NULL (with a pending exception) when it is not one. */
static char* string_arg(napi_env env, napi_value value) {
  size_t length;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) {
    napi_throw_type_error(env, NULL, "durable_file: expected a string path");
    return NULL;
  }
  char* out = malloc(length + 1);
  if (out == NULL) {
    napi_throw_error(env, NULL, "durable_file: out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, value, out, length + 1, &length);
  return out;
}

/* Queues op and returns its promise; on failure frees op and returns NULL with an exception pending. */
static napi_value queue(napi_env env, op_t* op) {
  napi_value promise, name;
  if (napi_create_promise(env, &op->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "berth:durable_file", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, op, &op->work) != napi_ok ||
      napi_queue_async_work(env, op->work) != napi_ok) {
    napi_throw_error(env, NULL, "durable_file: could not queue the operation");
    free_op(env, op);
    return NULL;
  }
  return promise;
}

static op_t* new_op(napi_env env, op_kind kind) {
  op_t* op = calloc(1, sizeof *op);
  if (op == NULL) napi_throw_error(env, NULL, "durable_file: out of memory");
  else op->kind = kind;
  return op;
}

/* syncDir: "" means none. Returns 0, or -1 with an exception pending. */
static int sync_dir_arg(napi_env env, napi_value value, op_t* op) {
  char* dir = string_arg(env, value);
  if (dir == NULL) return -1;
  if (dir[0] == '\0') free(dir);
  else op->sync_dir = dir;
  return 0;
}

/* placeFrom, placeTo at argv[at], when given. Returns 0, or -1 with an exception pending. */
static int place_args(napi_env env, size_t argc, napi_value* argv, size_t at, op_t* op) {
  if (argc < at + 2) return 0;
  if ((op->place_from = string_arg(env, argv[at])) == NULL || (op->place_to = string_arg(env, argv[at + 1])) == NULL) return -1;
  return 0;
}

/* A Uint8Array argument's bytes and length; -1 after throwing `message` for anything else. */
static int uint8_array_arg(napi_env env, napi_value value, const char* message, void** bytes, size_t* length) {
  bool is_typedarray = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, value, &is_typedarray) != napi_ok || !is_typedarray ||
      napi_get_typedarray_info(env, value, &type, length, bytes, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, message);
    return -1;
  }
  return 0;
}

static napi_value put_file(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || (argc != 4 && argc != 6)) {
    napi_throw_type_error(env, NULL, "durable_file.put(temp, target, data, syncDir[, placeFrom, placeTo])");
    return NULL;
  }
  size_t length;
  void* bytes;
  if (uint8_array_arg(env, argv[2], "durable_file.put: data must be a Uint8Array", &bytes, &length) != 0) return NULL;
  op_t* op = new_op(env, OP_PUT);
  if (op == NULL) return NULL;
  if ((op->path_a = string_arg(env, argv[0])) == NULL || (op->path_b = string_arg(env, argv[1])) == NULL ||
      sync_dir_arg(env, argv[3], op) != 0 || place_args(env, argc, argv, 4, op) != 0 ||
      napi_create_reference(env, argv[2], 1, &op->data_ref) != napi_ok) {
    free_op(env, op);
    return NULL;
  }
  op->data = bytes;
  op->length = length;
  return queue(env, op);
}

/* putMakingDirectories(temp, target, data, root): put, not durable, making temp's directories. */
static napi_value put_making_directories(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4) {
    napi_throw_type_error(env, NULL, "durable_file.putMakingDirectories(temp, target, data, root)");
    return NULL;
  }
  size_t length;
  void* bytes;
  if (uint8_array_arg(env, argv[2], "durable_file.putMakingDirectories: data must be a Uint8Array", &bytes, &length) != 0) return NULL;
  op_t* op = new_op(env, OP_PUT);
  if (op == NULL) return NULL;
  if ((op->path_a = string_arg(env, argv[0])) == NULL || (op->path_b = string_arg(env, argv[1])) == NULL ||
      (op->make_root = string_arg(env, argv[3])) == NULL || napi_create_reference(env, argv[2], 1, &op->data_ref) != napi_ok) {
    free_op(env, op);
    return NULL;
  }
  op->data = bytes;
  op->length = length;
  return queue(env, op);
}

/* writeHashed(fd, data, state): data a Uint8Array, state a Buffer of sizeof(SHA256_CTX). */
static napi_value write_hashed_op(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "durable_file.writeHashed(fd, data, sha256State)");
    return NULL;
  }
  size_t length;
  void* bytes;
  if (uint8_array_arg(env, argv[1], "durable_file.writeHashed: data must be a Uint8Array", &bytes, &length) != 0) return NULL;
  bool is_buffer = false;
  void* state;
  size_t state_length;
  if (napi_is_buffer(env, argv[2], &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, argv[2], &state, &state_length) != napi_ok || state_length != sizeof(SHA256_CTX)) {
    napi_throw_type_error(env, NULL, "durable_file.writeHashed: the state must be a Buffer of SHA256_CTX's size");
    return NULL;
  }
  op_t* op = new_op(env, OP_WRITE_HASHED);
  if (op == NULL) return NULL;
  if (napi_create_reference(env, argv[1], 1, &op->data_ref) != napi_ok || napi_create_reference(env, argv[2], 1, &op->state_ref) != napi_ok) {
    napi_throw_error(env, NULL, "durable_file: could not reference the arguments");
    free_op(env, op);
    return NULL;
  }
  op->fd = fd;
  op->data = bytes;
  op->length = length;
  op->state = state;
  return queue(env, op);
}

/* An operation on paths only: (path_a[, path_b][, syncDir][, placeFrom, placeTo]), `count`
 * arguments, or `count` + 2 when `placed`. */
static napi_value path_op(napi_env env, napi_callback_info info, op_kind kind, size_t count, bool placed, const char* usage) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || (argc != count && !(placed && argc == count + 2))) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  op_t* op = new_op(env, kind);
  if (op == NULL) return NULL;
  if ((op->path_a = string_arg(env, argv[0])) == NULL || (count > 1 && (op->path_b = string_arg(env, argv[1])) == NULL) ||
      (count > 2 && sync_dir_arg(env, argv[2], op) != 0) || (placed && place_args(env, argc, argv, count, op) != 0)) {
    free_op(env, op);
    return NULL;
  }
  return queue(env, op);
}

static napi_value move_file(napi_env env, napi_callback_info info) {
  return path_op(env, info, OP_MOVE, 3, true, "durable_file.move(source, dest, syncDir[, placeFrom, placeTo])");
}

static napi_value make_stand_in_op(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3) {
    napi_throw_type_error(env, NULL, "durable_file.makeStandIn(dir, root, suffix)");
    return NULL;
  }
  op_t* op = new_op(env, OP_STAND_IN);
  if (op == NULL) return NULL;
  if ((op->path_a = string_arg(env, argv[0])) == NULL || (op->path_b = string_arg(env, argv[1])) == NULL ||
      (op->suffix = string_arg(env, argv[2])) == NULL) {
    free_op(env, op);
    return NULL;
  }
  return queue(env, op);
}

static napi_value remove_tree_op(napi_env env, napi_callback_info info) {
  return path_op(env, info, OP_REMOVE_TREE, 1, false, "durable_file.removeTree(path)");
}

static napi_value sync_dir(napi_env env, napi_callback_info info) {
  return path_op(env, info, OP_SYNC_DIR, 1, false, "durable_file.syncDirectory(dir)");
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "put", NAPI_AUTO_LENGTH, put_file, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "put", fn) != napi_ok ||
      napi_create_function(env, "move", NAPI_AUTO_LENGTH, move_file, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "move", fn) != napi_ok ||
      napi_create_function(env, "syncDirectory", NAPI_AUTO_LENGTH, sync_dir, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "syncDirectory", fn) != napi_ok ||
      napi_create_function(env, "makeStandIn", NAPI_AUTO_LENGTH, make_stand_in_op, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "makeStandIn", fn) != napi_ok ||
      napi_create_function(env, "removeTree", NAPI_AUTO_LENGTH, remove_tree_op, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "removeTree", fn) != napi_ok ||
      napi_create_function(env, "putMakingDirectories", NAPI_AUTO_LENGTH, put_making_directories, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "putMakingDirectories", fn) != napi_ok ||
      napi_create_function(env, "writeHashed", NAPI_AUTO_LENGTH, write_hashed_op, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "writeHashed", fn) != napi_ok ||
      napi_create_uint32(env, (uint32_t)sizeof(SHA256_CTX), &fn) != napi_ok ||
      napi_set_named_property(env, exports, "sha256StateSize", fn) != napi_ok || napi_get_boolean(env, true, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "placement", fn) != napi_ok) {
    return NULL;
  }
  return exports;
}
