// Sends file ranges to TCP sockets with sendfile(2) from one background thread.
//
// Node has no sendfile: serving a blob with streams reads every byte into a user-space buffer and
// writes it back to the kernel, which costs a core at a few GB/s and keeps 1 MiB buffers alive
// until the garbage collector finds them. Go's net/http (and so distribution) hands the file to
// the kernel instead. This addon does the same without touching libuv's threadpool (which the
// filesystem driver needs) or Node's event loop: the caller dups nothing and keeps its socket; the
// pump dups both descriptors, so it owns what it writes through and the caller may close its own
// file handle at once. One thread waits on epoll for all transfers; each writable socket gets at
// most PUMP_SLICE bytes per turn so that one fast reader cannot starve the others.
//
// It also moves bytes from one socket to another with splice(2) through a pipe of its own: a blob's
// body read from an object store goes to the client without passing through JavaScript (Node's
// client copies each chunk into fresh memory, and each chunk then costs a pass through the stream
// machinery and a write(2)). The source socket is read for exactly `length` bytes, so an answer
// that follows on a kept-alive connection is left for its reader.
//
// JS API:
//   start(socketFd, fileFd, offset, length, stallMs) -> id
//     Begins a transfer; the completion callback given to init() later receives
//     (id, errno, bytesSent). errno 0 means `length` bytes were sent.
//   startSplice(socketFd, sourceFd, length, stallMs) -> id
//     The same, from the socket `sourceFd` (its next `length` bytes). ECONNRESET when the source
//     ends first.
//   cancel(id)   Ends a transfer early (the callback reports ECANCELED).
//   init(callback)  Must be called once before start().
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <time.h>
#include <unistd.h>

#define PUMP_SLICE (4 * 1024 * 1024)
#define MAX_EVENTS 64
// How often the pump looks for stalled transfers when nothing else wakes it.
#define STALL_CHECK_MS 1000

typedef struct transfer {
  int64_t id;
  int socket_fd;
  int file_fd;  // a file, or for a splice the source socket
  // A splice: the pipe between the sockets (-1 otherwise), the bytes in it, the bytes still to read.
  int pipe_r, pipe_w;
  int64_t in_pipe;
  int64_t to_read;
  off_t offset;
  int64_t remaining;
  int64_t sent;
  int64_t stall_ms;
  int64_t last_progress_ms;
  int error;
  struct transfer* next;  // in `pending` (main thread -> pump) or `active` (pump only)
} transfer;

typedef struct {
  int64_t id;
  int error;
  int64_t sent;
} completion;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static transfer* pending = NULL;     // guarded by lock
static int64_t* cancelled = NULL;    // guarded by lock
static size_t cancelled_count = 0, cancelled_capacity = 0;
static transfer* active = NULL;      // pump thread only
static int epoll_fd = -1, wake_fd = -1;
static int64_t next_id = 1;          // main thread only
static napi_threadsafe_function on_complete = NULL;
// Transfers started and not yet reported (main thread only): while there are any, the completion
// callback keeps the event loop alive even if nothing else does (a socket already closed by JS).
static int64_t unreported = 0;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake_pump(void) {
  uint64_t one = 1;
  ssize_t ignored = write(wake_fd, &one, sizeof one);
  (void)ignored;
}

// Closes the transfer's descriptors and reports it to JS. Pump thread.
static void finish(transfer* t, int error) {
  epoll_ctl(epoll_fd, EPOLL_CTL_DEL, t->socket_fd, NULL);
  close(t->socket_fd);
  if (t->pipe_r >= 0) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, t->file_fd, NULL);
    close(t->pipe_r);
    close(t->pipe_w);
  }
  close(t->file_fd);
  completion* c = malloc(sizeof *c);
  if (c) {
    c->id = t->id;
    c->error = error;
    c->sent = t->sent;
    napi_call_threadsafe_function(on_complete, c, napi_tsfn_blocking);
  }
  transfer** link = &active;
  while (*link && *link != t) link = &(*link)->next;
  if (*link) *link = t->next;
  free(t);
}

// Sends up to one slice; returns 1 when the transfer is over (finished or failed).
static int pump(transfer* t) {
  int64_t budget = PUMP_SLICE;
  while (t->remaining > 0 && budget > 0) {
    size_t want = (size_t)(t->remaining < budget ? t->remaining : budget);
    ssize_t n = sendfile(t->socket_fd, t->file_fd, &t->offset, want);
    if (n > 0) {
      t->remaining -= n;
      t->sent += n;
      budget -= n;
      t->last_progress_ms = now_ms();
      continue;
    }
    if (n == 0) {
      finish(t, EIO);  // the file is shorter than it was when the transfer began
      return 1;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return 0;
    finish(t, errno);
    return 1;
  }
  if (t->remaining == 0) {
    finish(t, 0);
    return 1;
  }
  return 0;
}

// Moves up to one slice from the source socket to the client through the pipe; returns 1 when
// the transfer is over. Both sockets are edge-triggered: each side is worked until it would block,
// and a transfer stopped by its slice is re-armed so that epoll reports it again.
static int pump_splice(transfer* t) {
  int64_t budget = PUMP_SLICE;
  for (;;) {
    if (t->in_pipe > 0) {
      unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (t->to_read > 0 ? SPLICE_F_MORE : 0);
      ssize_t n = splice(t->pipe_r, NULL, t->socket_fd, NULL, (size_t)t->in_pipe, flags);
      if (n > 0) {
        t->in_pipe -= n;
        t->remaining -= n;
        t->sent += n;
        budget -= n;
        t->last_progress_ms = now_ms();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return 0;  // the client's socket is full
      finish(t, n == 0 ? EPIPE : errno);
      return 1;
    }
    if (t->to_read == 0) {
      finish(t, 0);
      return 1;
    }
    if (budget <= 0) {
      struct epoll_event out = {.events = EPOLLOUT | EPOLLET, .data.ptr = t};
      struct epoll_event in = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = t};
      epoll_ctl(epoll_fd, EPOLL_CTL_MOD, t->socket_fd, &out);
      epoll_ctl(epoll_fd, EPOLL_CTL_MOD, t->file_fd, &in);
      return 0;
    }
    ssize_t n = splice(t->file_fd, NULL, t->pipe_w, NULL, (size_t)(t->to_read < budget ? t->to_read : budget), SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      t->to_read -= n;
      t->in_pipe += n;
      t->last_progress_ms = now_ms();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 0;  // nothing from the source yet
    finish(t, n == 0 ? ECONNRESET : errno);  // the source ended before `length` bytes
    return 1;
  }
}

static void take_requests(void) {
  uint64_t count;
  ssize_t ignored = read(wake_fd, &count, sizeof count);
  (void)ignored;
  pthread_mutex_lock(&lock);
  transfer* added = pending;
  pending = NULL;
  size_t n_cancelled = cancelled_count;
  int64_t* ids = NULL;
  if (n_cancelled) {
    ids = malloc(n_cancelled * sizeof *ids);
    if (ids) memcpy(ids, cancelled, n_cancelled * sizeof *ids);
    cancelled_count = 0;
  }
  pthread_mutex_unlock(&lock);

  while (added) {
    transfer* t = added;
    added = t->next;
    t->next = active;
    active = t;
    t->last_progress_ms = now_ms();
    if (t->pipe_r < 0) {
      struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = t};
      if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, t->socket_fd, &ev) != 0) finish(t, errno);
      continue;
    }
    struct epoll_event out = {.events = EPOLLOUT | EPOLLET, .data.ptr = t};
    struct epoll_event in = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = t};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, t->socket_fd, &out) != 0) {
      finish(t, errno);
      continue;
    }
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, t->file_fd, &in) != 0) {
      int error = errno;
      epoll_ctl(epoll_fd, EPOLL_CTL_DEL, t->socket_fd, NULL);
      // finish() removes the source too: harmless when it was never added.
      finish(t, error);
    }
  }
  for (size_t i = 0; ids && i < n_cancelled; i++) {
    for (transfer* t = active; t; t = t->next) {
      if (t->id == ids[i]) {
        finish(t, ECANCELED);
        break;
      }
    }
  }
  free(ids);
}

static void fail_stalled(void) {
  int64_t now = now_ms();
  transfer* t = active;
  while (t) {
    transfer* next = t->next;
    if (t->stall_ms > 0 && now - t->last_progress_ms >= t->stall_ms) finish(t, ETIMEDOUT);
    t = next;
  }
}

static void* pump_thread(void* unused) {
  (void)unused;
  // Visible in /proc/<pid>/task/*/comm and top -H: operators (and the tests) can see the pump.
  pthread_setname_np(pthread_self(), "berth-sendfile");
  struct epoll_event events[MAX_EVENTS];
  int64_t last_stall_check = now_ms();
  for (;;) {
    int n = epoll_wait(epoll_fd, events, MAX_EVENTS, active ? STALL_CHECK_MS : -1);
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == NULL) {
        take_requests();
        continue;
      }
      transfer* t = events[i].data.ptr;
      // An earlier event of this round may have finished (and freed) a transfer only through
      // cancellation, which is handled in take_requests; check membership to be safe.
      int live = 0;
      for (transfer* a = active; a; a = a->next) {
        if (a == t) {
          live = 1;
          break;
        }
      }
      if (live) {
        if (t->pipe_r >= 0) pump_splice(t);
        else pump(t);
      }
    }
    int64_t now = now_ms();
    if (now - last_stall_check >= STALL_CHECK_MS) {
      fail_stalled();
      last_stall_check = now;
    }
  }
  return NULL;
}

static void call_js(napi_env env, napi_value callback, void* context, void* data) {
  (void)context;
  completion* c = data;
  if (env && --unreported == 0) napi_unref_threadsafe_function(env, on_complete);
  if (env && callback) {
    napi_value args[3], undefined;
    napi_create_int64(env, c->id, &args[0]);
    napi_create_int32(env, c->error, &args[1]);
    napi_create_int64(env, c->sent, &args[2]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, callback, 3, args, NULL);
  }
  free(c);
}

static napi_value throw_errno(napi_env env, const char* what) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, strerror(errno));
  napi_throw_error(env, NULL, message);
  return NULL;
}

static napi_value init_pump(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (on_complete) {
    napi_throw_error(env, NULL, "sendfile pump already initialised");
    return NULL;
  }
  napi_value name;
  napi_create_string_utf8(env, "sendfile-pump", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &on_complete) !=
      napi_ok) {
    return NULL;
  }
  // An idle pump must not keep the process alive; start() refs it while transfers are unreported.
  napi_unref_threadsafe_function(env, on_complete);
  epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) return throw_errno(env, "epoll_create1");
  wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) return throw_errno(env, "eventfd");
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) return throw_errno(env, "epoll_ctl");
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&thread, &attr, pump_thread, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    errno = rc;
    return throw_errno(env, "pthread_create");
  }
  return NULL;
}

static int get_int64(napi_env env, napi_value value, int64_t* out) {
  return napi_get_value_int64(env, value, out) == napi_ok;
}

static napi_value enqueue(napi_env env, transfer* t);

// A transfer not yet started, without a pipe; NULL with a JS exception pending.
static transfer* new_transfer(napi_env env) {
  if (!on_complete) {
    napi_throw_error(env, NULL, "sendfile pump not initialised");
    return NULL;
  }
  transfer* t = calloc(1, sizeof *t);
  if (!t) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  t->pipe_r = t->pipe_w = -1;
  return t;
}

static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t socket_fd, file_fd, offset, length, stall_ms;
  if (argc != 5 || !get_int64(env, argv[0], &socket_fd) || !get_int64(env, argv[1], &file_fd) ||
      !get_int64(env, argv[2], &offset) || !get_int64(env, argv[3], &length) ||
      !get_int64(env, argv[4], &stall_ms) || socket_fd < 0 || file_fd < 0 || offset < 0 || length < 0) {
    napi_throw_type_error(env, NULL, "start(socketFd, fileFd, offset, length, stallMs) takes non-negative integers");
    return NULL;
  }
  transfer* t = new_transfer(env);
  if (!t) return NULL;
  t->socket_fd = fcntl((int)socket_fd, F_DUPFD_CLOEXEC, 0);
  if (t->socket_fd < 0) {
    free(t);
    return throw_errno(env, "dup socket");
  }
  t->file_fd = fcntl((int)file_fd, F_DUPFD_CLOEXEC, 0);
  if (t->file_fd < 0) {
    close(t->socket_fd);
    free(t);
    return throw_errno(env, "dup file");
  }
  int64_t id = next_id++;
  t->id = id;
  t->offset = (off_t)offset;
  t->remaining = length;
  t->stall_ms = stall_ms;
  return enqueue(env, t);
}

// Hands `t` to the pump thread and returns its id to JS.
static napi_value enqueue(napi_env env, transfer* t) {
  int64_t id = t->id;
  if (unreported++ == 0) napi_ref_threadsafe_function(env, on_complete);
  // From here the pump thread owns `t` and may already have freed it: only `id` is ours.
  pthread_mutex_lock(&lock);
  t->next = pending;
  pending = t;
  pthread_mutex_unlock(&lock);
  wake_pump();
  napi_value result;
  napi_create_int64(env, id, &result);
  return result;
}

// The pipe of a splice: as large as the system lets an unprivileged process make it (1 MiB by
// default), so that one splice moves up to that much.
#define SPLICE_PIPE_BYTES (1024 * 1024)

static napi_value start_splice(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t socket_fd, source_fd, length, stall_ms;
  if (argc != 4 || !get_int64(env, argv[0], &socket_fd) || !get_int64(env, argv[1], &source_fd) ||
      !get_int64(env, argv[2], &length) || !get_int64(env, argv[3], &stall_ms) || socket_fd < 0 || source_fd < 0 ||
      length < 0) {
    napi_throw_type_error(env, NULL, "startSplice(socketFd, sourceFd, length, stallMs) takes non-negative integers");
    return NULL;
  }
  transfer* t = new_transfer(env);
  if (!t) return NULL;
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    free(t);
    return throw_errno(env, "pipe2");
  }
  (void)fcntl(pipe_fds[1], F_SETPIPE_SZ, SPLICE_PIPE_BYTES);  // a smaller pipe only means more splices
  t->pipe_r = pipe_fds[0];
  t->pipe_w = pipe_fds[1];
  t->socket_fd = fcntl((int)socket_fd, F_DUPFD_CLOEXEC, 0);
  t->file_fd = t->socket_fd < 0 ? -1 : fcntl((int)source_fd, F_DUPFD_CLOEXEC, 0);
  if (t->file_fd < 0) {
    int error = errno;
    if (t->socket_fd >= 0) close(t->socket_fd);
    close(t->pipe_r);
    close(t->pipe_w);
    free(t);
    errno = error;
    return throw_errno(env, "dup socket");
  }
  t->id = next_id++;
  t->remaining = length;
  t->to_read = length;
  t->stall_ms = stall_ms;
  return enqueue(env, t);
}

static napi_value cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t id;
  if (argc != 1 || !get_int64(env, argv[0], &id)) {
    napi_throw_type_error(env, NULL, "cancel(id) takes an integer");
    return NULL;
  }
  pthread_mutex_lock(&lock);
  if (cancelled_count == cancelled_capacity) {
    size_t capacity = cancelled_capacity ? cancelled_capacity * 2 : 16;
    int64_t* grown = realloc(cancelled, capacity * sizeof *grown);
    if (!grown) {
      pthread_mutex_unlock(&lock);
      napi_throw_error(env, NULL, "out of memory");
      return NULL;
    }
    cancelled = grown;
    cancelled_capacity = capacity;
  }
  cancelled[cancelled_count++] = id;
  pthread_mutex_unlock(&lock);
  wake_pump();
  return NULL;
}

static napi_value module_init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"init", NULL, init_pump, NULL, NULL, NULL, napi_default, NULL},
      {"start", NULL, start, NULL, NULL, NULL, napi_default, NULL},
      {"startSplice", NULL, start_splice, NULL, NULL, NULL, napi_default, NULL},
      {"cancel", NULL, cancel, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, module_init)
