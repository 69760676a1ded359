/* SPDX-License-Identifier: MIT */
/*
 * The RouteGuide client from the gRPC tutorials: calls each of the four
 * methods once, one of each kind, and prints what it learns.
 *
 *   route_guide_client [--target=HOST:PORT]      (default localhost:50052)
 *
 * Exits 0 when every call succeeds; otherwise prints the failed call's
 * status and exits 1.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cgrpc/cgrpc.h>

#include "route_guide.grpc-c.h"

/* Every call gets 10 seconds; a call still running then ends with
 * DEADLINE_EXCEEDED. */
static const cgrpc_call_options call_options = {.timeout_ms = 10000};

/* Formats |point| (degrees times 10^7) as degrees into |buf|. */
static const char *format_point(const Routeguide__Point *point, char buf[32]) {
  /* protobuf-c leaves a message field that was not sent NULL. */
  if (point == NULL) {
    return "(no location)";
  }
  snprintf(buf, 32, "%.4f, %.4f", point->latitude / 1e7,
           point->longitude / 1e7);
  return buf;
}

/* Prints a failed call's status.  Returns 0 for OK, 1 otherwise. */
static int check_status(const char *method, const cgrpc_status *status) {
  if (status->code == CGRPC_STATUS_OK) {
    return 0;
  }
  fprintf(stderr, "route_guide_client: %s failed: %s: %s\n", method,
          cgrpc_status_code_name(status->code),
          status->message ? status->message : "");
  return 1;
}

/* Reports a library error (a negative CGRPC_ERR_* code).  Returns 1. */
static int report_error(const char *method, int rv) {
  fprintf(stderr, "route_guide_client: %s: %s\n", method, cgrpc_strerror(rv));
  return 1;
}

/* ---- unary --------------------------------------------------------------- */

/* Asks for the feature at one point. */
static int get_one_feature(cgrpc_channel *channel, int32_t latitude,
                           int32_t longitude) {
  Routeguide__Point point = ROUTEGUIDE__POINT__INIT;
  Routeguide__Feature *feature = NULL;
  cgrpc_status status = {0};
  char where[32];
  int rv;

  point.latitude = latitude;
  point.longitude = longitude;
  if (routeguide__route_guide__get_feature__call(channel, &point, &feature,
                                                 &call_options,
                                                 &status) == CGRPC_STATUS_OK) {
    if (feature->name[0] != '\0') {
      printf("Found feature called \"%s\" at %s\n", feature->name,
             format_point(feature->location, where));
    } else {
      printf("Found no feature at %s\n", format_point(&point, where));
    }
    protobuf_c_message_free_unpacked(&feature->base, NULL);
  }
  rv = check_status("GetFeature", &status);
  cgrpc_status_clear(&status);
  return rv;
}

static int get_feature(cgrpc_channel *channel) {
  printf("-------------- GetFeature --------------\n");
  if (get_one_feature(channel, 488584000, 22945000) != 0) { /* a landmark */
    return 1;
  }
  return get_one_feature(channel, 0, 0); /* the Gulf of Guinea: nothing */
}

/* ---- server-streaming ---------------------------------------------------- */

/* Lists the features inside a rectangle around central Paris. */
static int list_features(cgrpc_channel *channel) {
  Routeguide__Point lo = ROUTEGUIDE__POINT__INIT;
  Routeguide__Point hi = ROUTEGUIDE__POINT__INIT;
  Routeguide__Rectangle rect = ROUTEGUIDE__RECTANGLE__INIT;
  Routeguide__Feature *feature;
  cgrpc_status status = {0};
  cgrpc_call *call = NULL;
  char from[32], to[32];
  int n_features = 0, rv;

  printf("-------------- ListFeatures --------------\n");
  lo.latitude = 488400000;
  lo.longitude = 22800000;
  hi.latitude = 489000000;
  hi.longitude = 23800000;
  rect.lo = &lo;
  rect.hi = &hi;
  printf("Looking for features between %s and %s\n", format_point(&lo, from),
         format_point(&hi, to));

  /* __open() sends the one request; then the responses are read. */
  if ((rv = routeguide__route_guide__list_features__open(
           channel, &rect, &call_options, &call)) != 0) {
    return report_error("ListFeatures", rv);
  }
  while ((rv = routeguide__route_guide__list_features__read(call, &feature)) ==
         1) {
    printf("Found feature called \"%s\" at %s\n", feature->name,
           format_point(feature->location, from));
    n_features++;
    protobuf_c_message_free_unpacked(&feature->base, NULL);
  }
  if (rv < 0) {
    report_error("ListFeatures", rv);
    cgrpc_call_cancel(call); /* so that the status below is not OK */
  }
  cgrpc_call_finish(call, &status);
  cgrpc_call_unref(call);
  if (status.code == CGRPC_STATUS_OK) {
    printf("Found %d features\n", n_features);
  }
  rv = check_status("ListFeatures", &status);
  cgrpc_status_clear(&status);
  return rv;
}

/* ---- client-streaming ---------------------------------------------------- */

/* A walk through Paris: five landmarks and a bridge that is not one. */
static const struct {
  int32_t latitude;
  int32_t longitude;
} walk[] = {
    {488738000, 22950000}, /* Arc de Triomphe */
    {488584000, 22945000}, /* Eiffel Tower */
    {488637000, 23135000}, /* Pont Alexandre III */
    {488600000, 23266000}, /* Musee d'Orsay */
    {488606000, 23376000}, /* Louvre Museum */
    {488530000, 23499000}, /* Notre-Dame de Paris */
};

/* Sends the points of the walk, then prints the server's summary. */
static int record_route(cgrpc_channel *channel) {
  /* A traveller takes a while between points: a quarter of a second here. */
  const struct timespec pause = {.tv_sec = 0, .tv_nsec = 250 * 1000 * 1000};
  Routeguide__RouteSummary *summary = NULL;
  cgrpc_status status = {0};
  cgrpc_call *call = NULL;
  char where[32];
  int rv;

  printf("-------------- RecordRoute --------------\n");
  if ((rv = routeguide__route_guide__record_route__open(channel, &call_options,
                                                        &call)) != 0) {
    return report_error("RecordRoute", rv);
  }
  for (size_t i = 0; i < sizeof walk / sizeof walk[0]; i++) {
    Routeguide__Point point = ROUTEGUIDE__POINT__INIT;

    point.latitude = walk[i].latitude;
    point.longitude = walk[i].longitude;
    if (i > 0) {
      nanosleep(&pause, NULL); /* an early wake-up does no harm */
    }
    printf("Visiting point %s\n", format_point(&point, where));
    /* CGRPC_ERR_CLOSED means the call has ended; __finish() says why. */
    if ((rv = routeguide__route_guide__record_route__write(call, &point)) !=
        0) {
      break;
    }
  }
  /* Ends the stream of points and waits for the summary. */
  if (routeguide__route_guide__record_route__finish(call, &summary, &status) ==
      CGRPC_STATUS_OK) {
    printf("Finished trip with %d points\n", summary->point_count);
    printf("Passed %d features\n", summary->feature_count);
    printf("Travelled %d meters\n", summary->distance);
    printf("It took %d seconds\n", summary->elapsed_time);
    protobuf_c_message_free_unpacked(&summary->base, NULL);
  }
  cgrpc_call_unref(call);
  rv = check_status("RecordRoute", &status);
  cgrpc_status_clear(&status);
  return rv;
}

/* ---- bidirectional streaming --------------------------------------------- */

/*
 * The notes go out from main's thread while this thread reads the answers:
 * in a bidi call the server may answer at any time, and a client that only
 * reads after writing everything could stall both sides once the send
 * buffers fill up.
 */
static void *read_notes(void *arg) {
  cgrpc_call *call = arg;
  Routeguide__RouteNote *note;
  char where[32];
  int rv;

  while ((rv = routeguide__route_guide__route_chat__read(call, &note)) == 1) {
    printf("Got message \"%s\" at %s\n", note->message,
           format_point(note->location, where));
    protobuf_c_message_free_unpacked(&note->base, NULL);
  }
  if (rv < 0) {
    report_error("RouteChat", rv);
    cgrpc_call_cancel(call); /* so that the status is not OK */
  }
  return NULL;
}

/* Leaves notes at three places, coming back to two of them. */
static int route_chat(cgrpc_channel *channel) {
  static const struct {
    int32_t latitude;
    int32_t longitude;
    const char *message;
  } notes[] = {
      {488606000, 23376000, "First message"},  /* Louvre Museum */
      {488584000, 22945000, "Second message"}, /* Eiffel Tower */
      {488530000, 23499000, "Third message"},  /* Notre-Dame de Paris */
      {488606000, 23376000, "Fourth message"}, /* Louvre Museum */
      {488584000, 22945000, "Fifth message"},  /* Eiffel Tower */
      {488606000, 23376000, "Sixth message"},  /* Louvre Museum */
  };
  cgrpc_status status = {0};
  cgrpc_call *call = NULL;
  pthread_t reader;
  char where[32];
  int rv;

  printf("-------------- RouteChat --------------\n");
  if ((rv = routeguide__route_guide__route_chat__open(channel, &call_options,
                                                      &call)) != 0) {
    return report_error("RouteChat", rv);
  }
  if ((rv = pthread_create(&reader, NULL, read_notes, call)) != 0) {
    fprintf(stderr, "route_guide_client: pthread_create: %s\n", strerror(rv));
    cgrpc_call_cancel(call);
    cgrpc_call_finish(call, NULL);
    cgrpc_call_unref(call);
    return 1;
  }
  for (size_t i = 0; i < sizeof notes / sizeof notes[0]; i++) {
    Routeguide__Point location = ROUTEGUIDE__POINT__INIT;
    Routeguide__RouteNote note = ROUTEGUIDE__ROUTE_NOTE__INIT;

    location.latitude = notes[i].latitude;
    location.longitude = notes[i].longitude;
    note.location = &location;
    note.message = (char *)notes[i].message; /* only read */
    printf("Sending message \"%s\" at %s\n", note.message,
           format_point(&location, where));
    /* CGRPC_ERR_CLOSED means the call has ended; the status says why. */
    if (routeguide__route_guide__route_chat__write(call, &note) != 0) {
      break;
    }
  }
  /* No more notes: the server then ends the call, and so the reader.  If
   * the half-close fails, cancelling ends the call all the same. */
  if (cgrpc_call_writes_done(call) != 0) {
    cgrpc_call_cancel(call);
  }
  pthread_join(reader, NULL);
  cgrpc_call_finish(call, &status);
  cgrpc_call_unref(call);
  rv = check_status("RouteChat", &status);
  cgrpc_status_clear(&status);
  return rv;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv) {
  const char *target = "localhost:50052";
  cgrpc_channel *channel = NULL;
  int rv;

  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "--target=", 9) == 0) {
      target = argv[i] + 9;
    } else {
      fprintf(stderr, "usage: %s [--target=HOST:PORT]\n", argv[0]);
      return 2;
    }
  }

  if ((rv = cgrpc_channel_new(&channel, target, NULL)) != 0) {
    fprintf(stderr, "route_guide_client: %s: %s\n", target, cgrpc_strerror(rv));
    return 1;
  }
  /* One channel carries all four calls; stop at the first that fails. */
  rv = get_feature(channel) || list_features(channel) ||
       record_route(channel) || route_chat(channel);
  cgrpc_channel_del(channel);
  return rv;
}
