/*
 * trim(minFreeBytes): on libuv's threadpool, returns the C heap's free pages to the system
 * (glibc's malloc_trim) when at least minFreeBytes lie free in it; resolves to whether it trimmed.
 * glibc gives back only the free memory at the top of its main heap by itself: what a burst of
 * allocations leaves free below memory still in use stays resident (Node's Buffers, V8's own
 * allocations, every library's). src/process/idle-memory-return.ts decides when to call it.
 * Elsewhere than glibc it resolves to false and does nothing.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdbool.h>
#include <stdlib.h>
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define HAVE_TRIM 1
#endif

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  double min_free;
  bool trimmed;
} TrimJob;

static void execute(napi_env env, void *data) {
  TrimJob *job = data;
  job->trimmed = false;
#ifdef HAVE_TRIM
  struct mallinfo2 info = mallinfo2();
  if ((double)info.fordblks >= job->min_free) job->trimmed = malloc_trim(0) != 0;
#endif
}

static void complete(napi_env env, napi_status status, void *data) {
  TrimJob *job = data;
  napi_value result;
  napi_get_boolean(env, status == napi_ok && job->trimmed, &result);
  napi_resolve_deferred(env, job->deferred, result);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value trim(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], name, promise;
  double min_free = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_value_double(env, argv[0], &min_free) != napi_ok || !(min_free >= 0)) {
    napi_throw_type_error(env, NULL, "heap_trim.trim(minFreeBytes)");
    return NULL;
  }
  TrimJob *job = calloc(1, sizeof(TrimJob));
  if (job == NULL) {
    napi_throw_error(env, NULL, "heap_trim.trim: out of memory");
    return NULL;
  }
  job->min_free = min_free;
  if (napi_create_promise(env, &job->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "berth:heap-trim", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, job, &job->work) != napi_ok ||
      napi_queue_async_work(env, job->work) != napi_ok) {
    free(job);
    napi_throw_error(env, NULL, "heap_trim.trim: could not queue the work");
    return NULL;
  }
  return promise;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "trim", fn) != napi_ok) {
    return NULL;
  }
  return exports;
}
