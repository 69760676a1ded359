/* SPDX-License-Identifier: MIT */
/*
 * Server reflection: grpc.reflection.v1.ServerReflection and its v1alpha
 * twin, answered from the FileDescriptorProtos that generated code embeds
 * (cgrpc_service_desc.file_desc).
 *
 * A stream is a detached handler: the handler sets up the stream's state
 * in the call's arena and returns its thread to the pool; every request is
 * then answered from the read callback on the loop thread, and the next
 * read is asked for only once the response has gone to the transport.  So
 * a stream holds no thread, answers one request at a time, and a client
 * that stops reading stops the stream rather than piling up responses.
 *
 * Nothing is indexed in advance: each question walks the embedded
 * descriptors (kilobytes per file) with cgrpc__refl_walk_file(), which
 * allocates nothing; the per-request work is bounded by their total size.
 */
#include "services/reflection.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cgrpc/reflection.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "server/internal.h"
#include "util/mem.h"

typedef Grpc__Reflection__V1__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1__ServerReflectionResponse refl_response;

/* The oneof cases of requests and responses. */
#define REQ_(x)                                                                \
  GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x
#define RESP_(x)                                                               \
  GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##x

/* Nested messages deeper than this are not looked into. */
#define MAX_DEPTH 100

/* ---- the wire format, just enough for descriptors ------------------------ */

typedef struct wire {
  const uint8_t *p, *end;
} wire;

typedef struct wire_field {
  uint32_t number;
  int type;   /* 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
  uint64_t v; /* varints */
  wire bytes; /* length-delimited */
} wire_field;

static int wire_varint(wire *w, uint64_t *v) {
  uint64_t x = 0;
  int shift;
  for (shift = 0; shift < 64; shift += 7) {
    uint8_t b;
    if (w->p == w->end)
      return -1;
    b = *w->p++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

/* Reads the next field of |w|: 1, 0 at the end, -1 when malformed.
 * Groups never occur in descriptors and count as malformed. */
static int wire_next(wire *w, wire_field *f) {
  uint64_t key, len;
  if (w->p == w->end)
    return 0;
  if (wire_varint(w, &key) != 0 || (key >> 3) == 0 || (key >> 3) > UINT32_MAX)
    return -1;
  f->number = (uint32_t)(key >> 3);
  f->type = (int)(key & 7);
  switch (f->type) {
  case 0:
    return wire_varint(w, &f->v) == 0 ? 1 : -1;
  case 1:
  case 5: {
    size_t n = f->type == 1 ? 8 : 4;
    if ((size_t)(w->end - w->p) < n)
      return -1;
    w->p += n;
    return 1;
  }
  case 2:
    if (wire_varint(w, &len) != 0 || len > (uint64_t)(w->end - w->p))
      return -1;
    f->bytes.p = w->p;
    f->bytes.end = w->p + len;
    w->p += len;
    return 1;
  default:
    return -1;
  }
}

/* The last length-delimited field |number| of |msg| (the last one wins in
 * protobuf): 1 and |*out|, 0 when absent, -1 when |msg| is malformed. */
static int wire_bytes(wire msg, uint32_t number, wire *out) {
  wire_field f;
  int r, found = 0;
  while ((r = wire_next(&msg, &f)) == 1) {
    if (f.number == number && f.type == 2) {
      *out = f.bytes;
      found = 1;
    }
  }
  return r < 0 ? -1 : found;
}

/* ---- the symbols of a FileDescriptorProto -------------------------------- */

typedef struct walk {
  cgrpc__refl_sym_cb cb;
  void *arg;
  char name[CGRPC__REFL_MAX_NAME + 1]; /* the current scope */
  size_t len;
} walk;

/* Field numbers in descriptor.proto. */
enum {
  FILE_PACKAGE = 2,
  FILE_MESSAGE = 4,
  FILE_ENUM = 5,
  FILE_SERVICE = 6,
  FILE_EXTENSION = 7,
  MESSAGE_FIELD = 2,
  MESSAGE_NESTED = 3,
  MESSAGE_ENUM = 4,
  MESSAGE_EXTENSION = 6,
  MESSAGE_ONEOF = 8,
  ENUM_VALUE = 2,
  SERVICE_METHOD = 2,
  FIELD_EXTENDEE = 2,
  FIELD_NUMBER = 3,
  NAME = 1 /* the name of every kind of descriptor */
};

/* Appends "." (unless at the root) and |part| to the scope: 1, or 0 when
 * the name would be too long (or |part| is empty or holds a NUL, which no
 * valid descriptor has). */
static int scope_push(walk *wk, wire part) {
  size_t n = (size_t)(part.end - part.p), dot = wk->len > 0;
  if (n == 0 || memchr(part.p, '\0', n) ||
      n + dot > CGRPC__REFL_MAX_NAME - wk->len)
    return 0;
  if (dot)
    wk->name[wk->len] = '.';
  memcpy(wk->name + wk->len + dot, part.p, n);
  wk->len += dot + n;
  wk->name[wk->len] = '\0';
  return 1;
}

static void scope_pop(walk *wk, size_t len) {
  wk->len = len;
  wk->name[len] = '\0';
}

static int emit(walk *wk, cgrpc__refl_sym *sym) {
  sym->name = wk->name;
  sym->name_len = wk->len;
  return wk->cb(sym, wk->arg) ? 1 : 0;
}

/* A descriptor that is just a name in the current scope (field, oneof,
 * enum value, method); an extension also reports extendee and number.
 * Returns 1 to stop, 0 to go on, -1 when malformed. */
static int walk_leaf(walk *wk, wire desc, cgrpc__refl_kind kind) {
  cgrpc__refl_sym sym = {0};
  size_t saved = wk->len;
  wire name;
  int r = wire_bytes(desc, NAME, &name);
  if (r <= 0)
    return r;
  sym.kind = kind;
  if (kind == CGRPC__REFL_EXTENSION) {
    wire extendee = {NULL, NULL}, w = desc;
    wire_field f;
    if (wire_bytes(desc, FIELD_EXTENDEE, &extendee) < 0)
      return -1;
    sym.extendee = extendee.p;
    sym.extendee_len = (size_t)(extendee.end - extendee.p);
    while ((r = wire_next(&w, &f)) == 1)
      if (f.number == FIELD_NUMBER && f.type == 0)
        sym.number = (int32_t)(uint32_t)f.v;
    if (r < 0)
      return -1;
  }
  if (!scope_push(wk, name))
    return 0;
  r = emit(wk, &sym);
  scope_pop(wk, saved);
  return r;
}

/* An enum: its name, then its values beside it (protobuf scopes enum
 * values like the enum itself, "pkg.RED" for pkg.Color.RED). */
static int walk_enum(walk *wk, wire desc) {
  cgrpc__refl_sym sym = {0};
  size_t saved = wk->len;
  wire name, w = desc;
  wire_field f;
  int r = wire_bytes(desc, NAME, &name);
  if (r <= 0)
    return r;
  if (scope_push(wk, name)) {
    sym.kind = CGRPC__REFL_ENUM;
    r = emit(wk, &sym);
    scope_pop(wk, saved);
    if (r)
      return r;
  }
  while ((r = wire_next(&w, &f)) == 1)
    if (f.number == ENUM_VALUE && f.type == 2 &&
        (r = walk_leaf(wk, f.bytes, CGRPC__REFL_ENUM_VALUE)) != 0)
      return r;
  return r;
}

static int walk_message(walk *wk, wire desc, int depth) {
  cgrpc__refl_sym sym = {0};
  size_t saved = wk->len;
  wire name, w = desc;
  wire_field f;
  int r = wire_bytes(desc, NAME, &name);
  if (r <= 0)
    return r;
  if (depth > MAX_DEPTH || !scope_push(wk, name))
    return 0; /* nothing inside can have a name we look up */
  sym.kind = CGRPC__REFL_MESSAGE;
  r = emit(wk, &sym);
  while (r == 0 && (r = wire_next(&w, &f)) == 1) {
    r = 0;
    if (f.type != 2)
      continue;
    switch (f.number) {
    case MESSAGE_FIELD:
      r = walk_leaf(wk, f.bytes, CGRPC__REFL_FIELD);
      break;
    case MESSAGE_NESTED:
      r = walk_message(wk, f.bytes, depth + 1);
      break;
    case MESSAGE_ENUM:
      r = walk_enum(wk, f.bytes);
      break;
    case MESSAGE_EXTENSION:
      r = walk_leaf(wk, f.bytes, CGRPC__REFL_EXTENSION);
      break;
    case MESSAGE_ONEOF:
      r = walk_leaf(wk, f.bytes, CGRPC__REFL_ONEOF);
      break;
    }
  }
  scope_pop(wk, saved);
  return r;
}

static int walk_service(walk *wk, wire desc) {
  cgrpc__refl_sym sym = {0};
  size_t saved = wk->len;
  wire name, w = desc;
  wire_field f;
  int r = wire_bytes(desc, NAME, &name);
  if (r <= 0)
    return r;
  if (!scope_push(wk, name))
    return 0;
  sym.kind = CGRPC__REFL_SERVICE;
  r = emit(wk, &sym);
  while (r == 0 && (r = wire_next(&w, &f)) == 1) {
    r = 0;
    if (f.number == SERVICE_METHOD && f.type == 2)
      r = walk_leaf(wk, f.bytes, CGRPC__REFL_METHOD);
  }
  scope_pop(wk, saved);
  return r;
}

int cgrpc__refl_walk_file(const uint8_t *data, size_t len,
                          cgrpc__refl_sym_cb cb, void *arg) {
  walk wk;
  wire file = {data, data + len}, package, w = file;
  wire_field f;
  int r;
  if (!data && len)
    return CGRPC_ERR_PROTO;
  wk.cb = cb;
  wk.arg = arg;
  wk.len = 0;
  wk.name[0] = '\0';
  r = wire_bytes(file, FILE_PACKAGE, &package);
  if (r < 0)
    return CGRPC_ERR_PROTO;
  if (r == 1 && package.p != package.end && !scope_push(&wk, package))
    return 0; /* a package name longer than any name we look up */
  while ((r = wire_next(&w, &f)) == 1) {
    r = 0;
    if (f.type != 2)
      continue;
    switch (f.number) {
    case FILE_MESSAGE:
      r = walk_message(&wk, f.bytes, 0);
      break;
    case FILE_ENUM:
      r = walk_enum(&wk, f.bytes);
      break;
    case FILE_SERVICE:
      r = walk_service(&wk, f.bytes);
      break;
    case FILE_EXTENSION:
      r = walk_leaf(&wk, f.bytes, CGRPC__REFL_EXTENSION);
      break;
    }
    if (r != 0)
      break;
  }
  return r < 0 ? CGRPC_ERR_PROTO : r;
}

/* ---- one stream ---------------------------------------------------------- */

typedef struct refl_stream {
  cgrpc_server_ctx *ctx;
  const cgrpc_server *server;
  /* The files of every service and all they import, one per name (each
   * generated file carries its own copies of what it imports). */
  const cgrpc_file_desc **files;
  size_t n_files;
  /* Scratch for one response: the files it holds, in order, and which of
   * the table those are. */
  size_t *picked;
  unsigned char *in_response;
} refl_stream;

/* The index of the file |name| in |files|, or (size_t)-1. */
static size_t find_file(const cgrpc_file_desc *const *files, size_t n,
                        const char *name) {
  size_t i;
  for (i = 0; i < n; i++)
    if (strcmp(files[i]->name, name) == 0)
      return i;
  return (size_t)-1;
}

typedef struct file_table {
  const cgrpc_file_desc **files;
  size_t n, cap;
} file_table;

/* Adds |f| unless a file of its name is there.  0 or CGRPC_ERR_NOMEM. */
static int table_add(file_table *t, const cgrpc_file_desc *f) {
  if (!f || !f->name || find_file(t->files, t->n, f->name) != (size_t)-1)
    return 0;
  if (t->n == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 16;
    const cgrpc_file_desc **grown =
        cgrpc__realloc(t->files, cap * sizeof *grown);
    if (!grown)
      return CGRPC_ERR_NOMEM;
    t->files = grown;
    t->cap = cap;
  }
  t->files[t->n++] = f;
  return 0;
}

/* Fills st->files: the services' files, then (breadth first; the table is
 * its own work queue) what they import.  The table grows on the heap and
 * is then copied into the call's arena, which goes with the call.
 * Returns 0 or CGRPC_ERR_NOMEM. */
static int stream_collect_files(refl_stream *st) {
  file_table t = {NULL, 0, 0};
  size_t i, j;
  int rv = 0;
  for (i = 0; i < st->server->n_services && rv == 0; i++)
    rv = table_add(&t, st->server->services[i].desc->file_desc);
  for (i = 0; i < t.n && rv == 0; i++)
    for (j = 0; j < t.files[i]->n_deps && t.files[i]->deps && rv == 0; j++)
      rv = table_add(&t, t.files[i]->deps[j]);
  if (rv == 0 && t.n > 0) {
    st->files = cgrpc_server_ctx_alloc(st->ctx, t.n * sizeof *st->files);
    st->picked = cgrpc_server_ctx_alloc(st->ctx, t.n * sizeof *st->picked);
    st->in_response = cgrpc_server_ctx_alloc(st->ctx, t.n);
    if (!st->files || !st->picked || !st->in_response)
      rv = CGRPC_ERR_NOMEM;
    else {
      memcpy(st->files, t.files, t.n * sizeof *t.files);
      st->n_files = t.n;
    }
  }
  cgrpc__free(t.files);
  return rv;
}

/* ---- answers ------------------------------------------------------------- */

/* The files of a file response, into st->picked: |first|, then what it
 * imports, directly or not, breadth first.  Returns how many. */
static size_t pick_files(refl_stream *st, size_t first) {
  size_t n = 1, k, j;
  memset(st->in_response, 0, st->n_files);
  st->picked[0] = first;
  st->in_response[first] = 1;
  for (k = 0; k < n; k++) {
    const cgrpc_file_desc *f = st->files[st->picked[k]];
    for (j = 0; f->deps && j < f->n_deps; j++) {
      size_t i;
      if (!f->deps[j] || !f->deps[j]->name)
        continue;
      i = find_file(st->files, st->n_files, f->deps[j]->name);
      if (i != (size_t)-1 && !st->in_response[i]) {
        st->in_response[i] = 1;
        st->picked[n++] = i;
      }
    }
  }
  return n;
}

enum { FIND_SYMBOL, FIND_MESSAGE, FIND_EXTENSION, COLLECT_EXTENSIONS };

typedef struct sym_query {
  int mode;
  const char *name; /* the symbol, or the extended message */
  size_t len;
  int32_t number; /* FIND_EXTENSION */
  /* COLLECT_EXTENSIONS */
  int32_t *numbers;
  size_t n, cap;
  int nomem;
} sym_query;

/* Whether extension |s| extends the message |q->name|.  protoc writes the
 * extendee fully qualified, with a leading dot. */
static int extends(const cgrpc__refl_sym *s, const sym_query *q) {
  const uint8_t *e = s->extendee;
  size_t n = s->extendee_len;
  if (n > 0 && e[0] == '.') {
    e++;
    n--;
  }
  return n == q->len && (n == 0 || memcmp(e, q->name, n) == 0);
}

static int sym_is(const cgrpc__refl_sym *s, const sym_query *q) {
  return s->name_len == q->len &&
         (q->len == 0 || memcmp(s->name, q->name, q->len) == 0);
}

static int on_symbol(const cgrpc__refl_sym *s, void *arg) {
  sym_query *q = arg;
  switch (q->mode) {
  case FIND_SYMBOL:
    return sym_is(s, q);
  case FIND_MESSAGE:
    return s->kind == CGRPC__REFL_MESSAGE && sym_is(s, q);
  case FIND_EXTENSION:
    return s->kind == CGRPC__REFL_EXTENSION && s->number == q->number &&
           extends(s, q);
  default:
    break;
  }
  if (s->kind != CGRPC__REFL_EXTENSION || !extends(s, q))
    return 0;
  if (q->n == q->cap) {
    size_t cap = q->cap ? 2 * q->cap : 16;
    int32_t *grown = cgrpc__realloc(q->numbers, cap * sizeof *grown);
    if (!grown) {
      q->nomem = 1;
      return 1;
    }
    q->numbers = grown;
    q->cap = cap;
  }
  q->numbers[q->n++] = s->number;
  return 0;
}

/* The first file where |q| stops the walk, or (size_t)-1.  A file whose
 * bytes are damaged is skipped. */
static size_t search_files(const refl_stream *st, sym_query *q) {
  size_t i;
  for (i = 0; i < st->n_files; i++)
    if (cgrpc__refl_walk_file(st->files[i]->data, st->files[i]->len, on_symbol,
                              q) == 1)
      return i;
  return (size_t)-1;
}

/* |name| fits the lookups (its length to |*len|), or 0. */
static int name_ok(const char *name, size_t *len) {
  *len = strnlen(name, CGRPC__REFL_MAX_NAME + 1);
  return *len <= CGRPC__REFL_MAX_NAME;
}

/* What one response points to, released once it has been serialized. */
typedef struct answer {
  refl_response resp;
  Grpc__Reflection__V1__ErrorResponse error;
  Grpc__Reflection__V1__FileDescriptorResponse files;
  Grpc__Reflection__V1__ListServiceResponse services;
  Grpc__Reflection__V1__ExtensionNumberResponse numbers;
  char message[400];
  void *mem;    /* heap arrays of the response */
  int32_t *ext; /* COLLECT_EXTENSIONS's numbers */
} answer;

static void answer_error(answer *a, cgrpc_status_code code, const char *fmt,
                         ...) CGRPC_PRINTF(3, 4);

static void answer_error(answer *a, cgrpc_status_code code, const char *fmt,
                         ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->message, sizeof a->message, fmt, ap);
  va_end(ap);
  a->error.error_code = (int32_t)code;
  a->error.error_message = a->message;
  a->resp.message_response_case = RESP_(ERROR_RESPONSE);
  a->resp.error_response = &a->error;
}

/* At most this much of a name goes into an error message. */
#define SHOWN 200

static void answer_files(answer *a, refl_stream *st, size_t first) {
  size_t n = pick_files(st, first), i;
  ProtobufCBinaryData *blobs = cgrpc__malloc(n * sizeof *blobs);
  if (!blobs) {
    answer_error(a, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  for (i = 0; i < n; i++) {
    const cgrpc_file_desc *f = st->files[st->picked[i]];
    /* protobuf-c's bytes are not const; packing only reads them. */
    blobs[i].data = (uint8_t *)f->data;
    blobs[i].len = f->len;
  }
  a->mem = blobs;
  a->files.n_file_descriptor_proto = n;
  a->files.file_descriptor_proto = blobs;
  a->resp.message_response_case = RESP_(FILE_DESCRIPTOR_RESPONSE);
  a->resp.file_descriptor_response = &a->files;
}

static void answer_list(answer *a, const refl_stream *st) {
  size_t n = st->server->n_services, i;
  Grpc__Reflection__V1__ServiceResponse *items, **ptrs;
  void *mem = cgrpc__malloc(n * (sizeof *items + sizeof *ptrs));
  if (!mem) {
    answer_error(a, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  items = mem;
  ptrs = (Grpc__Reflection__V1__ServiceResponse **)(items + n);
  for (i = 0; i < n; i++) {
    grpc__reflection__v1__service_response__init(&items[i]);
    items[i].name = (char *)st->server->services[i].desc->name;
    ptrs[i] = &items[i];
  }
  a->mem = mem;
  a->services.n_service = n;
  a->services.service = ptrs;
  a->resp.message_response_case = RESP_(LIST_SERVICES_RESPONSE);
  a->resp.list_services_response = &a->services;
}

static void answer_symbol(answer *a, refl_stream *st, const char *symbol) {
  sym_query q = {FIND_SYMBOL, symbol, 0, 0, NULL, 0, 0, 0};
  size_t i;
  if (!name_ok(symbol, &q.len)) {
    answer_error(a, CGRPC_STATUS_INVALID_ARGUMENT,
                 "symbol name longer than %d bytes", CGRPC__REFL_MAX_NAME);
    return;
  }
  i = search_files(st, &q);
  if (i == (size_t)-1)
    answer_error(a, CGRPC_STATUS_NOT_FOUND, "symbol not found: %.*s", SHOWN,
                 symbol);
  else
    answer_files(a, st, i);
}

static void answer_filename(answer *a, refl_stream *st, const char *name) {
  size_t len, i;
  if (!name_ok(name, &len)) {
    answer_error(a, CGRPC_STATUS_INVALID_ARGUMENT,
                 "file name longer than %d bytes", CGRPC__REFL_MAX_NAME);
    return;
  }
  i = find_file(st->files, st->n_files, name);
  if (i == (size_t)-1)
    answer_error(a, CGRPC_STATUS_NOT_FOUND, "file not found: %.*s", SHOWN,
                 name);
  else
    answer_files(a, st, i);
}

static void answer_extension(answer *a, refl_stream *st,
                             const Grpc__Reflection__V1__ExtensionRequest *r) {
  sym_query q = {FIND_EXTENSION, NULL, 0, 0, NULL, 0, 0, 0};
  size_t i;
  if (!r) {
    answer_error(a, CGRPC_STATUS_INVALID_ARGUMENT, "empty extension request");
    return;
  }
  q.name = r->containing_type;
  q.number = r->extension_number;
  if (!name_ok(q.name, &q.len)) {
    answer_error(a, CGRPC_STATUS_INVALID_ARGUMENT,
                 "type name longer than %d bytes", CGRPC__REFL_MAX_NAME);
    return;
  }
  i = search_files(st, &q);
  if (i == (size_t)-1)
    answer_error(a, CGRPC_STATUS_NOT_FOUND, "extension %d of %.*s not found",
                 (int)q.number, SHOWN, q.name);
  else
    answer_files(a, st, i);
}

static void answer_numbers(answer *a, refl_stream *st, const char *type) {
  sym_query q = {FIND_MESSAGE, type, 0, 0, NULL, 0, 0, 0};
  size_t i;
  if (!name_ok(type, &q.len)) {
    answer_error(a, CGRPC_STATUS_INVALID_ARGUMENT,
                 "type name longer than %d bytes", CGRPC__REFL_MAX_NAME);
    return;
  }
  if (search_files(st, &q) == (size_t)-1) {
    answer_error(a, CGRPC_STATUS_NOT_FOUND, "type not found: %.*s", SHOWN,
                 type);
    return;
  }
  /* Extensions may live in any file, so every one is walked to the end. */
  q.mode = COLLECT_EXTENSIONS;
  for (i = 0; i < st->n_files && !q.nomem; i++)
    cgrpc__refl_walk_file(st->files[i]->data, st->files[i]->len, on_symbol, &q);
  a->ext = q.numbers;
  if (q.nomem) {
    answer_error(a, CGRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  a->numbers.base_type_name = (char *)type;
  a->numbers.n_extension_number = q.n;
  a->numbers.extension_number = q.numbers;
  a->resp.message_response_case = RESP_(ALL_EXTENSION_NUMBERS_RESPONSE);
  a->resp.all_extension_numbers_response = &a->numbers;
}

static void on_written(cgrpc_server_ctx *ctx, int ok, void *user_data);

/* Answers |req| and queues the response.  0, or an error from
 * cgrpc_server_ctx_write_async(). */
static int stream_answer(refl_stream *st, refl_request *req) {
  answer a;
  int rv;
  grpc__reflection__v1__server_reflection_response__init(&a.resp);
  grpc__reflection__v1__error_response__init(&a.error);
  grpc__reflection__v1__file_descriptor_response__init(&a.files);
  grpc__reflection__v1__list_service_response__init(&a.services);
  grpc__reflection__v1__extension_number_response__init(&a.numbers);
  a.mem = NULL;
  a.ext = NULL;
  a.resp.valid_host = req->host;
  a.resp.original_request = req;
  switch (req->message_request_case) {
  case REQ_(LIST_SERVICES):
    answer_list(&a, st);
    break;
  case REQ_(FILE_BY_FILENAME):
    answer_filename(&a, st, req->file_by_filename);
    break;
  case REQ_(FILE_CONTAINING_SYMBOL):
    answer_symbol(&a, st, req->file_containing_symbol);
    break;
  case REQ_(FILE_CONTAINING_EXTENSION):
    answer_extension(&a, st, req->file_containing_extension);
    break;
  case REQ_(ALL_EXTENSION_NUMBERS_OF_TYPE):
    answer_numbers(&a, st, req->all_extension_numbers_of_type);
    break;
  default:
    answer_error(&a, CGRPC_STATUS_UNIMPLEMENTED,
                 "the request asks nothing this server knows");
    break;
  }
  /* Serialized before write_async returns: nothing it points to need live
   * on. */
  rv = cgrpc_server_ctx_write_async(st->ctx, &a.resp.base, on_written, st);
  if (rv == CGRPC_ERR_TOO_LARGE) {
    answer_error(&a, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                 "the answer is larger than the server's send limit");
    rv = cgrpc_server_ctx_write_async(st->ctx, &a.resp.base, on_written, st);
  }
  cgrpc__free(a.mem);
  cgrpc__free(a.ext);
  return rv;
}

/* ---- the stream's callbacks ---------------------------------------------- */

/* Ends the call; |st| lives in its arena and is gone afterwards. */
static void stream_end(refl_stream *st, cgrpc_status_code code) {
  cgrpc_server_ctx_finish(st->ctx, code);
}

static void on_read(cgrpc_server_ctx *ctx, ProtobufCMessage *msg,
                    void *user_data) {
  refl_stream *st = user_data;
  int rv;
  if (!msg) {
    /* The client half-closed, or the call is over already. */
    stream_end(st, cgrpc_server_ctx_is_cancelled(ctx) ? CGRPC_STATUS_CANCELLED
                                                      : CGRPC_STATUS_OK);
    return;
  }
  rv = stream_answer(st, (refl_request *)msg);
  protobuf_c_message_free_unpacked(msg, NULL);
  if (rv != 0)
    stream_end(st, rv == CGRPC_ERR_CLOSED ? CGRPC_STATUS_CANCELLED
                                          : CGRPC_STATUS_INTERNAL);
}

static void on_written(cgrpc_server_ctx *ctx, int ok, void *user_data) {
  refl_stream *st = user_data;
  if (!ok) {
    stream_end(st, CGRPC_STATUS_CANCELLED);
    return;
  }
  if (cgrpc_server_ctx_read_async(ctx, on_read, st) != 0)
    stream_end(st, CGRPC_STATUS_INTERNAL);
}

static cgrpc_status_code refl_handler(const void *servicer,
                                      cgrpc_server_ctx *ctx,
                                      const ProtobufCMessage *request,
                                      ProtobufCMessage *response,
                                      void *user_data) {
  refl_stream *st;
  int rv;
  (void)servicer;
  (void)request;
  (void)response;
  (void)user_data;
  st = cgrpc_server_ctx_alloc(ctx, sizeof *st);
  if (!st)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                                 "out of memory");
  memset(st, 0, sizeof *st);
  st->ctx = ctx;
  st->server = ctx->server;
  if (stream_collect_files(st) != 0)
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_RESOURCE_EXHAUSTED,
                                 "out of memory");
  cgrpc_server_ctx_detach(ctx);
  rv = cgrpc_server_ctx_read_async(ctx, on_read, st);
  if (rv != 0) {
    cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INTERNAL, "reading: %s",
                          cgrpc_strerror(rv));
    stream_end(st, CGRPC_STATUS_INTERNAL);
  }
  return CGRPC_STATUS_OK; /* ignored: detached */
}

/* ---- the services -------------------------------------------------------- */

/* v1alpha's messages are v1's under another package name, field for field:
 * the same C code reads and writes both. */
#define REFL_METHOD(pkg)                                                       \
  {                                                                            \
    .name = "ServerReflectionInfo",                                            \
    .path = "/" pkg ".ServerReflection/ServerReflectionInfo",                  \
    .kind = CGRPC_METHOD_BIDI_STREAMING,                                       \
    .input = &grpc__reflection__v1__server_reflection_request__descriptor,     \
    .output = &grpc__reflection__v1__server_reflection_response__descriptor,   \
  }

static const cgrpc_method_desc v1_methods[1] = {
    REFL_METHOD("grpc.reflection.v1")};
static const cgrpc_method_desc v1alpha_methods[1] = {
    REFL_METHOD("grpc.reflection.v1alpha")};

static const cgrpc_service_desc refl_services[2] = {
    {
        .name = "grpc.reflection.v1.ServerReflection",
        .n_methods = 1,
        .methods = v1_methods,
        .file_desc = &cgrpc__reflection_v1_file,
    },
    {
        .name = "grpc.reflection.v1alpha.ServerReflection",
        .n_methods = 1,
        .methods = v1alpha_methods,
        .file_desc = &cgrpc__reflection_v1alpha_file,
    },
};

int cgrpc_server_enable_reflection(cgrpc_server *server) {
  static const cgrpc_method_handler handler = {refl_handler};
  static const char servicer = 0; /* the server wants one; it is unused */
  size_t i, j;
  int rv;
  if (!server)
    return CGRPC_ERR_INVALID_ARGUMENT;
  if (server->state != SERVER_NEW)
    return CGRPC_ERR_INVALID_STATE;
  for (i = 0; i < server->n_services; i++)
    for (j = 0; j < 2; j++)
      if (strcmp(server->services[i].desc->name, refl_services[j].name) == 0)
        return CGRPC_ERR_ALREADY_EXISTS;
  for (j = 0; j < 2; j++) {
    rv = cgrpc_server_register_service(server, &refl_services[j], &handler,
                                       &servicer, sizeof servicer, NULL);
    if (rv != 0)
      return rv;
  }
  return 0;
}
