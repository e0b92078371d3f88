/*
 * The Error node:fs gives for a failed syscall ("ENOENT: no such file or directory, open '<path>'"
 * with `code`, `errno`, `syscall` and `path`), for the addons whose callers map errors by code.
 */
#ifndef BERTH_ERRNO_ERROR_H
#define BERTH_ERRNO_ERROR_H

#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

static void set_string(napi_env env, napi_value object, const char* name, const char* value) {
  napi_value v;
  if (napi_create_string_utf8(env, value, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, object, name, v);
}

/* `syscall` and `path` may be NULL: then the Error has no such property. */
static napi_value errno_error(napi_env env, int err, const char* syscall, const char* path) {
  const char* code = uv_err_name(-err);
  char text[4200];
  snprintf(text, sizeof text, "%s: %s, %s '%s'", code, strerror(err), syscall ? syscall : "?", path ? path : "");
  napi_value message, error, errno_value;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  set_string(env, error, "code", code);
  napi_create_int32(env, -err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  if (syscall) set_string(env, error, "syscall", syscall);
  if (path) set_string(env, error, "path", path);
  return error;
}

#endif
