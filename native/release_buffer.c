/*
 * release(arrayBuffer): detaches an ArrayBuffer, so that its memory is freed now (when nothing
 * else holds its backing store) instead of whenever V8 collects the object. berth calls it for
 * upload body chunks once they are copied into the filesystem writer's buffers; see
 * src/native/release-buffer.ts for which chunks qualify. Returns false for a buffer that cannot be
 * detached (Node marks some, such as its pool for small Buffers, as not transferable).
 */
#define NAPI_VERSION 8
#include <node_api.h>

static napi_value release(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value result;
  bool is_arraybuffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_is_arraybuffer(env, argv[0], &is_arraybuffer) != napi_ok || !is_arraybuffer) {
    napi_throw_type_error(env, NULL, "release_buffer.release(arrayBuffer)");
    return NULL;
  }
  napi_get_boolean(env, napi_detach_arraybuffer(env, argv[0]) == napi_ok, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "release", NAPI_AUTO_LENGTH, release, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "release", fn) != napi_ok) {
    return NULL;
  }
  return exports;
}
