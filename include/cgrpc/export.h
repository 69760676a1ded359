/* SPDX-License-Identifier: MIT */
#ifndef CGRPC_EXPORT_H
#define CGRPC_EXPORT_H

/* Marks a public symbol; the library builds with hidden visibility. */
#if defined(CGRPC_STATICLIB)
#define CGRPC_EXTERN
#elif defined(__GNUC__)
#define CGRPC_EXTERN __attribute__((visibility("default")))
#else
#define CGRPC_EXTERN
#endif

#if defined(__GNUC__)
#define CGRPC_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CGRPC_PRINTF(fmt, args)
#endif

#endif /* CGRPC_EXPORT_H */
