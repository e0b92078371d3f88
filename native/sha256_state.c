/*
 * SHA-256 whose state is a plain 112-byte buffer (OpenSSL's SHA256_CTX), so an upload's hash can be
 * saved to storage after each chunk and resumed by any process, at OpenSSL's native speed (SHA-NI).
 * Node's crypto.Hash runs the same code but cannot export its state; a WebAssembly hasher can,
 * at a quarter of the speed. Node links OpenSSL and exports its symbols to addons.
 */
#include <node_api.h>
#include <openssl/sha.h>
#include <string.h>

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "sha256_state: N-API call failed"); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

static SHA256_CTX* state_arg(napi_env env, napi_value value) {
  void* data;
  size_t length;
  bool is_buffer = false;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, value, &data, &length) != napi_ok || length != sizeof(SHA256_CTX)) {
    napi_throw_type_error(env, NULL, "sha256_state: state must be a Buffer of the state size");
    return NULL;
  }
  return (SHA256_CTX*)data;
}

/* init(): a fresh state buffer. */
static napi_value init_state(napi_env env, napi_callback_info info) {
  napi_value buffer;
  void* data;
  CHECK(napi_create_buffer(env, sizeof(SHA256_CTX), &data, &buffer));
  SHA256_Init((SHA256_CTX*)data);
  return buffer;
}

/* update(state, bytes): hashes bytes (any TypedArray-backed Buffer) into state, in place. */
static napi_value update_state(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 2) {
    napi_throw_type_error(env, NULL, "sha256_state.update(state, bytes)");
    return NULL;
  }
  SHA256_CTX* ctx = state_arg(env, argv[0]);
  if (ctx == NULL) return NULL;
  void* data;
  size_t length;
  bool is_buffer = false;
  if (napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, NULL, "sha256_state: bytes must be a Buffer");
    return NULL;
  }
  CHECK(napi_get_buffer_info(env, argv[1], &data, &length));
  SHA256_Update(ctx, data, length);
  return NULL;
}

/* digest(state): the 32-byte digest of what state has seen; state itself is left as it was. */
static napi_value digest_state(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 1) {
    napi_throw_type_error(env, NULL, "sha256_state.digest(state)");
    return NULL;
  }
  SHA256_CTX* ctx = state_arg(env, argv[0]);
  if (ctx == NULL) return NULL;
  SHA256_CTX copy;
  memcpy(&copy, ctx, sizeof copy);
  napi_value out;
  void* bytes;
  CHECK(napi_create_buffer(env, SHA256_DIGEST_LENGTH, &bytes, &out));
  SHA256_Final((unsigned char*)bytes, &copy);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_value size;
  CHECK(napi_create_function(env, "init", NAPI_AUTO_LENGTH, init_state, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "init", fn));
  CHECK(napi_create_function(env, "update", NAPI_AUTO_LENGTH, update_state, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "update", fn));
  CHECK(napi_create_function(env, "digest", NAPI_AUTO_LENGTH, digest_state, NULL, &fn));
  CHECK(napi_set_named_property(env, exports, "digest", fn));
  CHECK(napi_create_uint32(env, (uint32_t)sizeof(SHA256_CTX), &size));
  CHECK(napi_set_named_property(env, exports, "stateSize", size));
  return exports;
}
