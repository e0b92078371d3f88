/*
 * moderate(): tells V8 that memory is wanted back (Isolate::MemoryPressureNotification, level
 * moderate). V8 then starts an incremental collection that reduces the heap's footprint: it
 * compacts the old generation and returns the pages it leaves empty, where an ordinary collection
 * keeps them committed for the next allocations. The call itself took 4-6 ms on a 20 MiB heap on
 * the 2-core VMs; the marking then runs in small steps as tasks on the event loop. Nothing in
 * Node's JavaScript API reaches this without --expose-gc, whose gc() is a full collection in one
 * pause. src/process/idle-memory-return.ts decides when to call it.
 *
 * V8's C++ API, not Node-API: the addon is built for the Node.js it is installed with (npm install
 * runs node-gyp), as the others are.
 */
#include <node.h>

namespace {

void Moderate(const v8::FunctionCallbackInfo<v8::Value>& args) {
  args.GetIsolate()->MemoryPressureNotification(v8::MemoryPressureLevel::kModerate);
}

}  // namespace

// Context-aware: loadable in worker threads too.
NODE_MODULE_INIT() {
  NODE_SET_METHOD(exports, "moderate", Moderate);
}
