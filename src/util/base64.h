/* SPDX-License-Identifier: MIT */
/*
 * Base64 (RFC 4648 standard alphabet) for "-bin" metadata values.  gRPC
 * senders emit unpadded base64; receivers accept padded and unpadded input.
 */
#ifndef CGRPC_UTIL_BASE64_H
#define CGRPC_UTIL_BASE64_H

#include <stddef.h>
#include <stdint.h>

/*
 * Returns the length of the unpadded encoding of |n| bytes, not counting the
 * NUL that cgrpc__base64_encode() writes after it.  The caller must make sure
 * |n| is below SIZE_MAX / 4 * 3 (any real buffer is).
 */
size_t cgrpc__base64_encoded_len(size_t n);

/*
 * Encodes the |n| bytes at |src| into |dst| with the standard alphabet and
 * no '=' padding, then writes a NUL.  |dst| must hold
 * cgrpc__base64_encoded_len(n) + 1 bytes.  |src| may be NULL when |n| is 0.
 *
 * Returns the number of characters written, not counting the NUL.
 */
size_t cgrpc__base64_encode(char *dst, const uint8_t *src, size_t n);

/*
 * Returns an upper bound on the decoded size of |n| characters of base64
 * (padded or not).  Always at least the exact size; never more than
 * n / 4 * 3 + 2.
 */
size_t cgrpc__base64_decoded_max(size_t n);

/*
 * Decodes |n| characters at |src| into |dst|, which must hold
 * cgrpc__base64_decoded_max(n) bytes, and stores the decoded length in
 * |*dst_len|.  Accepts padded input (length a multiple of 4, with "=" or
 * "==" only at the very end) and unpadded input.  No whitespace is allowed.
 * Non-zero trailing bits in the last character are tolerated, as most
 * decoders do.  |*dst_len| is written only on success.
 *
 * Returns 0, or -1 when |src| holds a character outside the alphabet, has an
 * impossible length (n % 4 == 1 after removing padding), or has '=' anywhere
 * other than the final one or two positions of a 4-character group.
 */
int cgrpc__base64_decode(uint8_t *dst, size_t *dst_len, const char *src,
                         size_t n);

#endif /* CGRPC_UTIL_BASE64_H */
