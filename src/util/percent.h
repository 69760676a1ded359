/* SPDX-License-Identifier: MIT */
/*
 * Percent-encoding of the grpc-message trailer, as the gRPC HTTP/2 protocol
 * document describes: the message is UTF-8, and every byte outside the
 * printable ASCII range 0x20-0x7e, as well as '%' itself, is sent as "%XX".
 * A space at the very start or end is escaped too, because HTTP/2 forbids
 * field values with leading or trailing whitespace.
 */
#ifndef CGRPC_UTIL_PERCENT_H
#define CGRPC_UTIL_PERCENT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Returns the length of the encoding of the |n| bytes at |src|, not counting
 * the NUL that cgrpc__percent_encode() writes.  At most 3 * |n|.
 */
size_t cgrpc__percent_encoded_len(const uint8_t *src, size_t n);

/*
 * Encodes the |n| bytes at |src| into |dst|: bytes in 0x20-0x7e other than
 * '%' (and a space at either end) are copied, every other byte becomes '%'
 * and two upper-case hex digits.  Writes a NUL after the encoding.  |dst| must hold
 * cgrpc__percent_encoded_len(src, n) + 1 bytes (3 * n + 1 always suffices).
 *
 * Returns the number of characters written, not counting the NUL.
 */
size_t cgrpc__percent_encode(char *dst, const uint8_t *src, size_t n);

/*
 * Decodes the |n| characters at |src| into |dst| and writes a NUL after
 * them.  "%XX" with two hex digits (either case) becomes one byte; a '%' not
 * followed by two hex digits is kept as it is, because the specification
 * asks receivers to decode what they can rather than fail.  |dst| must hold
 * |n| + 1 bytes.  |dst| may equal |src| (in-place decoding), since the output
 * never runs ahead of the input.
 *
 * Returns the decoded length, not counting the NUL.
 */
size_t cgrpc__percent_decode(uint8_t *dst, const char *src, size_t n);

#endif /* CGRPC_UTIL_PERCENT_H */
