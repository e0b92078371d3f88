{
  "targets": [
    {
      "target_name": "sha256_state",
      "sources": ["native/sha256_state.c"],
      "cflags": ["-O2", "-Wall", "-Wno-deprecated-declarations"]
    },
    {
      "target_name": "sendfile_pump",
      "sources": ["native/sendfile_pump.c"],
      "cflags": ["-O2", "-Wall"],
      "libraries": ["-lpthread"]
    },
    {
      "target_name": "release_buffer",
      "sources": ["native/release_buffer.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "heap_trim",
      "sources": ["native/heap_trim.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "cached_read",
      "sources": ["native/cached_read.c"],
      "cflags": ["-O2", "-Wall"]
    },
    {
      "target_name": "memory_pressure",
      "sources": ["native/memory_pressure.cc"],
      "cflags_cc": ["-O2", "-Wall", "-Wno-cast-function-type"]
    },
    {
      "target_name": "durable_file",
      "sources": ["native/durable_file.c"],
      "cflags": ["-O2", "-Wall", "-Wno-deprecated-declarations"]
    }
  ]
}
