/* SPDX-License-Identifier: MIT */
/*
 * The RouteGuide server from the gRPC tutorials: one method of each kind.
 *
 *   route_guide_server [--port=N]      (default 50052; 0 picks a free port)
 *
 * Knows a dozen places in and around Paris.  Handlers run on the server's
 * worker threads, several at a time, so the notes that RouteChat keeps are
 * guarded by a mutex.  Answers health checks (grpc.health.v1.Health), which
 * turn NOT_SERVING when it stops, cleanly, on SIGINT or SIGTERM.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cgrpc/cgrpc.h>

#include "route_guide.grpc-c.h"

/* ---- the places we know -------------------------------------------------- */

/* Coordinates are in degrees times 10^7, as in route_guide.proto. */
struct place {
  const char *name;
  int32_t latitude;
  int32_t longitude;
};

static const struct place places[] = {
    {"Eiffel Tower", 488584000, 22945000},
    {"Arc de Triomphe", 488738000, 22950000},
    {"Louvre Museum", 488606000, 23376000},
    {"Musee d'Orsay", 488600000, 23266000},
    {"Notre-Dame de Paris", 488530000, 23499000},
    {"Centre Pompidou", 488607000, 23522000},
    {"Sacre-Coeur Basilica", 488867000, 23431000},
    {"Pantheon", 488462000, 23464000},
    {"Luxembourg Garden", 488462000, 23372000},
    {"Place de la Bastille", 488532000, 23692000},
    {"Palace of Versailles", 488049000, 21204000},
    {"Mont-Saint-Michel", 486361000, -15115000},
};

#define N_PLACES (sizeof places / sizeof places[0])

/* Returns the place at exactly |point|, or NULL. */
static const struct place *find_place(const Routeguide__Point *point) {
  for (size_t i = 0; i < N_PLACES; i++) {
    if (places[i].latitude == point->latitude &&
        places[i].longitude == point->longitude) {
      return &places[i];
    }
  }
  return NULL;
}

static int32_t min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
static int32_t max_i32(int32_t a, int32_t b) { return a > b ? a : b; }

/* Nonzero when |place| lies in the rectangle with opposite corners |a|, |b|. */
static int inside(const struct place *place, const Routeguide__Point *a,
                  const Routeguide__Point *b) {
  return place->latitude >= min_i32(a->latitude, b->latitude) &&
         place->latitude <= max_i32(a->latitude, b->latitude) &&
         place->longitude >= min_i32(a->longitude, b->longitude) &&
         place->longitude <= max_i32(a->longitude, b->longitude);
}

/* Great-circle distance in metres (the haversine formula). */
static double distance_m(const Routeguide__Point *from,
                         const Routeguide__Point *to) {
  const double earth_radius_m = 6371000.0;
  const double e7_to_radians = 3.14159265358979323846 / 180.0 / 1e7;
  double lat1 = from->latitude * e7_to_radians;
  double lat2 = to->latitude * e7_to_radians;
  double dlat = lat2 - lat1;
  /* In double: the difference of two int32 longitudes can overflow int. */
  double dlon = ((double)to->longitude - from->longitude) * e7_to_radians;
  double h = sin(dlat / 2) * sin(dlat / 2) +
             cos(lat1) * cos(lat2) * sin(dlon / 2) * sin(dlon / 2);
  return 2 * earth_radius_m * asin(sqrt(h));
}

/* ---- RouteChat's notes --------------------------------------------------- */

/* A note is never changed or freed while the server runs, so a handler that
 * holds a pointer to one may read it without the lock. */
struct note {
  int32_t latitude;
  int32_t longitude;
  char *message;
};

/* What the handlers share (the user_data of every method). */
struct route_guide {
  pthread_mutex_t lock; /* guards the fields below */
  struct note **notes;  /* in the order they arrived */
  size_t n_notes;
  size_t cap_notes;
};

/* Makes room for one more note.  Call with the lock held.  Returns 0 or -1
 * (out of memory). */
static int make_room(struct route_guide *guide) {
  struct note **notes;
  size_t cap;

  if (guide->n_notes < guide->cap_notes) {
    return 0;
  }
  cap = guide->cap_notes ? 2 * guide->cap_notes : 16;
  if ((notes = realloc(guide->notes, cap * sizeof *notes)) == NULL) {
    return -1;
  }
  guide->notes = notes;
  guide->cap_notes = cap;
  return 0;
}

/*
 * Keeps a copy of |in| and returns the notes left before it at the same
 * place: |*n_earlier| of them, in an array to free with free().  Returns
 * NULL when out of memory; nothing is kept then.
 */
static const struct note **add_note(struct route_guide *guide,
                                    const Routeguide__RouteNote *in,
                                    size_t *n_earlier) {
  struct note *note = malloc(sizeof *note);
  const struct note **earlier = NULL;

  *n_earlier = 0;
  if (note == NULL || (note->message = strdup(in->message)) == NULL) {
    free(note);
    return NULL;
  }
  note->latitude = in->location->latitude;
  note->longitude = in->location->longitude;

  pthread_mutex_lock(&guide->lock);
  /* At most every note matches; the +1 keeps malloc(0) out of it. */
  if (make_room(guide) == 0 &&
      (earlier = malloc((guide->n_notes + 1) * sizeof *earlier)) != NULL) {
    for (size_t i = 0; i < guide->n_notes; i++) {
      if (guide->notes[i]->latitude == note->latitude &&
          guide->notes[i]->longitude == note->longitude) {
        earlier[(*n_earlier)++] = guide->notes[i];
      }
    }
    guide->notes[guide->n_notes++] = note;
    note = NULL;
  }
  pthread_mutex_unlock(&guide->lock);

  if (note != NULL) { /* out of memory */
    free(note->message);
    free(note);
  }
  return earlier;
}

static void free_notes(struct route_guide *guide) {
  for (size_t i = 0; i < guide->n_notes; i++) {
    free(guide->notes[i]->message);
    free(guide->notes[i]);
  }
  free(guide->notes);
}

/* ---- the four methods ---------------------------------------------------- */

/* Unary: the feature at a point, or a feature with an empty name. */
static cgrpc_status_code get_feature(cgrpc_server_ctx *ctx,
                                     const Routeguide__Point *request,
                                     Routeguide__Feature *reply,
                                     void *user_data) {
  const struct place *place = find_place(request);
  /* The reply is sent after we return: what it points to must outlive us. */
  Routeguide__Point *location = cgrpc_server_ctx_alloc(ctx, sizeof *location);

  (void)user_data;
  if (location == NULL) {
    return CGRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  routeguide__point__init(location);
  location->latitude = request->latitude;
  location->longitude = request->longitude;
  reply->location = location;
  if (place != NULL) {
    /* protobuf-c's strings are not const; the library only reads them. */
    reply->name = (char *)place->name;
  }
  return CGRPC_STATUS_OK;
}

/* Server-streaming: every feature inside the rectangle, one message each. */
static cgrpc_status_code list_features(cgrpc_server_ctx *ctx,
                                       const Routeguide__Rectangle *request,
                                       void *user_data) {
  (void)user_data;
  /* protobuf-c leaves a message field that was not sent NULL. */
  if (request->lo == NULL || request->hi == NULL) {
    return cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INVALID_ARGUMENT,
                                 "the rectangle needs both corners");
  }

  for (size_t i = 0; i < N_PLACES; i++) {
    Routeguide__Point location = ROUTEGUIDE__POINT__INIT;
    Routeguide__Feature feature = ROUTEGUIDE__FEATURE__INIT;

    if (!inside(&places[i], request->lo, request->hi)) {
      continue;
    }
    location.latitude = places[i].latitude;
    location.longitude = places[i].longitude;
    feature.name = (char *)places[i].name;
    feature.location = &location;
    /* __send() serializes before it returns, so stack messages will do. */
    if (routeguide__route_guide__list_features__send(ctx, &feature) != 0) {
      /* The call has ended (the client went away): nobody will see this. */
      return CGRPC_STATUS_CANCELLED;
    }
  }
  return CGRPC_STATUS_OK;
}

/* Client-streaming: reads a route's points, then replies with a summary. */
static cgrpc_status_code record_route(cgrpc_server_ctx *ctx,
                                      Routeguide__RouteSummary *reply,
                                      void *user_data) {
  Routeguide__Point previous = ROUTEGUIDE__POINT__INIT;
  Routeguide__Point *point;
  struct timespec start, end;
  double distance = 0;
  int rv;

  (void)user_data;
  if (clock_gettime(CLOCK_MONOTONIC, &start) != 0) {
    return CGRPC_STATUS_INTERNAL;
  }
  while ((rv = routeguide__route_guide__record_route__recv(ctx, &point)) == 1) {
    if (reply->point_count > 0) {
      distance += distance_m(&previous, point);
    }
    reply->point_count++;
    if (find_place(point) != NULL) {
      reply->feature_count++;
    }
    previous.latitude = point->latitude;
    previous.longitude = point->longitude;
    protobuf_c_message_free_unpacked(&point->base, NULL);
  }
  if (rv < 0) {
    return CGRPC_STATUS_CANCELLED; /* as above: the call is over */
  }
  if (clock_gettime(CLOCK_MONOTONIC, &end) != 0) {
    return CGRPC_STATUS_INTERNAL;
  }
  reply->distance = (int32_t)lround(distance);
  reply->elapsed_time = (int32_t)(end.tv_sec - start.tv_sec);
  return CGRPC_STATUS_OK;
}

/* Bidi: for each note received, sends back the notes left earlier at the
 * same place, then keeps it for those who come later. */
static cgrpc_status_code route_chat(cgrpc_server_ctx *ctx, void *user_data) {
  struct route_guide *guide = user_data;
  Routeguide__RouteNote *in;
  int rv;

  while ((rv = routeguide__route_guide__route_chat__recv(ctx, &in)) == 1) {
    cgrpc_status_code code = CGRPC_STATUS_OK;
    const struct note **earlier = NULL;
    size_t n_earlier = 0;

    if (in->location == NULL) {
      code = cgrpc_server_ctx_fail(ctx, CGRPC_STATUS_INVALID_ARGUMENT,
                                   "a note needs a location");
    } else if ((earlier = add_note(guide, in, &n_earlier)) == NULL) {
      code = CGRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    protobuf_c_message_free_unpacked(&in->base, NULL);

    /* Send without holding the lock: a slow client must not stall others. */
    for (size_t i = 0; i < n_earlier && code == CGRPC_STATUS_OK; i++) {
      Routeguide__Point location = ROUTEGUIDE__POINT__INIT;
      Routeguide__RouteNote out = ROUTEGUIDE__ROUTE_NOTE__INIT;

      location.latitude = earlier[i]->latitude;
      location.longitude = earlier[i]->longitude;
      out.location = &location;
      out.message = earlier[i]->message;
      if (routeguide__route_guide__route_chat__send(ctx, &out) != 0) {
        code = CGRPC_STATUS_CANCELLED;
      }
    }
    free(earlier);
    if (code != CGRPC_STATUS_OK) {
      return code;
    }
  }
  return rv == 0 ? CGRPC_STATUS_OK : CGRPC_STATUS_CANCELLED;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv) {
  Routeguide__RouteGuide_Servicer route_guide = {
      .get_feature = get_feature,
      .list_features = list_features,
      .record_route = record_route,
      .route_chat = route_chat,
  };
  struct route_guide guide = {0};
  cgrpc_server *server = NULL;
  char addr[64];
  sigset_t stop_signals;
  int port = 50052, sig, rv;

  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--port=", 7) == 0) {
      port = atoi(argv[i] + 7);
    } else {
      fprintf(stderr, "usage: %s [--port=N]\n", argv[0]);
      return 2;
    }
  }

  /* Block the stop signals in every thread; main waits for them below. */
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if ((rv = pthread_sigmask(SIG_BLOCK, &stop_signals, NULL)) != 0 ||
      (rv = pthread_mutex_init(&guide.lock, NULL)) != 0) {
    fprintf(stderr, "route_guide_server: %s\n", strerror(rv));
    return 1;
  }

  snprintf(addr, sizeof addr, "[::]:%d", port);
  if ((rv = cgrpc_server_new(&server, NULL)) != 0 ||
      (rv = cgrpc_server_add_insecure_port(server, addr, &port)) != 0 ||
      (rv = routeguide__route_guide__servicer__register(server, &route_guide,
                                                        &guide)) != 0 ||
      (rv = cgrpc_server_enable_health(server)) != 0 ||
      (rv = cgrpc_server_start(server)) != 0) {
    fprintf(stderr, "route_guide_server: %s\n", cgrpc_strerror(rv));
    cgrpc_server_del(server);
    pthread_mutex_destroy(&guide.lock);
    return 1;
  }
  printf("Server started, listening on %d\n", port);
  fflush(stdout);

  sigwait(&stop_signals, &sig);
  cgrpc_server_shutdown(server, 5000);
  cgrpc_server_del(server); /* no handler runs after this */
  free_notes(&guide);
  pthread_mutex_destroy(&guide.lock);
  return 0;
}
