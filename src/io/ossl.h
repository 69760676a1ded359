/* SPDX-License-Identifier: MIT */
/*
 * OpenSSL, loaded when TLS is first used.
 *
 * libcgrpc does not link libssl and libcrypto: a process that never makes
 * TLS credentials never maps them (Debian builds them BIND_NOW, and their
 * relocation alone costs an idle server about 1.7 MB of resident memory).
 * cgrpc__ossl_load() dlopen()s the libssl of the OpenSSL major version the
 * library was built against (libcrypto comes with it) and looks up every
 * function the library calls; the macros below send each call through that
 * table, including the calls OpenSSL's own macros expand to
 * (SSL_CTX_set_mode is SSL_CTX_ctrl, ...).  The library links with
 * --no-undefined, so a function missing from the list fails the build.
 *
 * Every entry point that makes TLS state (the credentials and the session
 * cache constructors) loads first; everything else runs only on objects
 * those made, so it finds the table filled.  Include this header, never
 * <openssl/...> directly, in src/.
 */
#ifndef CGRPC_IO_OSSL_H
#define CGRPC_IO_OSSL_H

#include <stddef.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* The OpenSSL functions the library calls (what the macros of the headers
 * above expand to included). */
#define CGRPC__OSSL_FUNCS(X)                                                   \
  X(ASN1_STRING_get0_data)                                                     \
  X(ASN1_STRING_length)                                                        \
  X(BIO_clear_flags)                                                           \
  X(BIO_ctrl)                                                                  \
  X(BIO_free)                                                                  \
  X(BIO_get_data)                                                              \
  X(BIO_get_new_index)                                                         \
  X(BIO_meth_free)                                                             \
  X(BIO_meth_new)                                                              \
  X(BIO_meth_set_create)                                                       \
  X(BIO_meth_set_ctrl)                                                         \
  X(BIO_meth_set_read)                                                         \
  X(BIO_meth_set_write)                                                        \
  X(BIO_new)                                                                   \
  X(BIO_new_mem_buf)                                                           \
  X(BIO_s_mem)                                                                 \
  X(BIO_set_data)                                                              \
  X(BIO_set_flags)                                                             \
  X(BIO_set_init)                                                              \
  X(ERR_clear_error)                                                           \
  X(ERR_peek_error)                                                            \
  X(ERR_peek_last_error)                                                       \
  X(ERR_reason_error_string)                                                   \
  X(EVP_PKEY_free)                                                             \
  X(GENERAL_NAMES_free)                                                        \
  X(OPENSSL_sk_num)                                                            \
  X(OPENSSL_sk_value)                                                          \
  X(PEM_read_bio_PrivateKey)                                                   \
  X(PEM_read_bio_X509)                                                         \
  X(SSL_CIPHER_get_name)                                                       \
  X(SSL_CTX_add_client_CA)                                                     \
  X(SSL_CTX_check_private_key)                                                 \
  X(SSL_CTX_ctrl)                                                              \
  X(SSL_CTX_free)                                                              \
  X(SSL_CTX_get_cert_store)                                                    \
  X(SSL_CTX_get_ex_data)                                                       \
  X(SSL_CTX_new)                                                               \
  X(SSL_CTX_sess_set_new_cb)                                                   \
  X(SSL_CTX_set1_cert_store)                                                   \
  X(SSL_CTX_set_alpn_protos)                                                   \
  X(SSL_CTX_set_alpn_select_cb)                                                \
  X(SSL_CTX_set_ex_data)                                                       \
  X(SSL_CTX_set_options)                                                       \
  X(SSL_CTX_set_session_id_context)                                            \
  X(SSL_CTX_set_verify)                                                        \
  X(SSL_CTX_up_ref)                                                            \
  X(SSL_CTX_use_PrivateKey)                                                    \
  X(SSL_CTX_use_certificate)                                                   \
  X(SSL_SESSION_dup)                                                           \
  X(SSL_SESSION_free)                                                          \
  X(SSL_SESSION_up_ref)                                                        \
  X(SSL_ctrl)                                                                  \
  X(SSL_do_handshake)                                                          \
  X(SSL_free)                                                                  \
  X(SSL_get0_alpn_selected)                                                    \
  X(SSL_get0_param)                                                            \
  X(SSL_get0_peer_certificate)                                                 \
  X(SSL_get_SSL_CTX)                                                           \
  X(SSL_get_current_cipher)                                                    \
  X(SSL_get_error)                                                             \
  X(SSL_get_verify_result)                                                     \
  X(SSL_get_version)                                                           \
  X(SSL_has_pending)                                                           \
  X(SSL_is_init_finished)                                                      \
  X(SSL_new)                                                                   \
  X(SSL_read)                                                                  \
  X(SSL_session_reused)                                                        \
  X(SSL_set_accept_state)                                                      \
  X(SSL_set_bio)                                                               \
  X(SSL_set_connect_state)                                                     \
  X(SSL_set_session)                                                           \
  X(SSL_shutdown)                                                              \
  X(SSL_write)                                                                 \
  X(TLS_client_method)                                                         \
  X(TLS_server_method)                                                         \
  X(X509_NAME_print_ex)                                                        \
  X(X509_STORE_add_cert)                                                       \
  X(X509_STORE_free)                                                           \
  X(X509_STORE_new)                                                            \
  X(X509_STORE_set_default_paths)                                              \
  X(X509_VERIFY_PARAM_set1_host)                                               \
  X(X509_VERIFY_PARAM_set1_ip_asc)                                             \
  X(X509_free)                                                                 \
  X(X509_get_ext_d2i)                                                          \
  X(X509_get_subject_name)                                                     \
  X(X509_verify_cert_error_string)

typedef struct cgrpc__ossl_api {
#define CGRPC__OSSL_FIELD(name) __typeof__(&name) p_##name;
  CGRPC__OSSL_FUNCS(CGRPC__OSSL_FIELD)
#undef CGRPC__OSSL_FIELD
} cgrpc__ossl_api;

extern cgrpc__ossl_api cgrpc__ossl;

/*
 * Loads OpenSSL once for the process.  Returns 0, or CGRPC_ERR_UNSUPPORTED
 * when libssl is not there or lacks a function; then every later call
 * fails the same way, and cgrpc__ossl_error() says why.
 * Thread safety: any thread.
 */
int cgrpc__ossl_load(void);
/* Why the load failed (a static string), after it did. */
const char *cgrpc__ossl_error(void);

#ifndef CGRPC__OSSL_NO_REDIRECT
#define ASN1_STRING_get0_data (*cgrpc__ossl.p_ASN1_STRING_get0_data)
#define ASN1_STRING_length (*cgrpc__ossl.p_ASN1_STRING_length)
#define BIO_clear_flags (*cgrpc__ossl.p_BIO_clear_flags)
#define BIO_ctrl (*cgrpc__ossl.p_BIO_ctrl)
#define BIO_free (*cgrpc__ossl.p_BIO_free)
#define BIO_get_data (*cgrpc__ossl.p_BIO_get_data)
#define BIO_get_new_index (*cgrpc__ossl.p_BIO_get_new_index)
#define BIO_meth_free (*cgrpc__ossl.p_BIO_meth_free)
#define BIO_meth_new (*cgrpc__ossl.p_BIO_meth_new)
#define BIO_meth_set_create (*cgrpc__ossl.p_BIO_meth_set_create)
#define BIO_meth_set_ctrl (*cgrpc__ossl.p_BIO_meth_set_ctrl)
#define BIO_meth_set_read (*cgrpc__ossl.p_BIO_meth_set_read)
#define BIO_meth_set_write (*cgrpc__ossl.p_BIO_meth_set_write)
#define BIO_new (*cgrpc__ossl.p_BIO_new)
#define BIO_new_mem_buf (*cgrpc__ossl.p_BIO_new_mem_buf)
#define BIO_s_mem (*cgrpc__ossl.p_BIO_s_mem)
#define BIO_set_data (*cgrpc__ossl.p_BIO_set_data)
#define BIO_set_flags (*cgrpc__ossl.p_BIO_set_flags)
#define BIO_set_init (*cgrpc__ossl.p_BIO_set_init)
#define ERR_clear_error (*cgrpc__ossl.p_ERR_clear_error)
#define ERR_peek_error (*cgrpc__ossl.p_ERR_peek_error)
#define ERR_peek_last_error (*cgrpc__ossl.p_ERR_peek_last_error)
#define ERR_reason_error_string (*cgrpc__ossl.p_ERR_reason_error_string)
#define EVP_PKEY_free (*cgrpc__ossl.p_EVP_PKEY_free)
#define GENERAL_NAMES_free (*cgrpc__ossl.p_GENERAL_NAMES_free)
#define OPENSSL_sk_num (*cgrpc__ossl.p_OPENSSL_sk_num)
#define OPENSSL_sk_value (*cgrpc__ossl.p_OPENSSL_sk_value)
#define PEM_read_bio_PrivateKey (*cgrpc__ossl.p_PEM_read_bio_PrivateKey)
#define PEM_read_bio_X509 (*cgrpc__ossl.p_PEM_read_bio_X509)
#define SSL_CIPHER_get_name (*cgrpc__ossl.p_SSL_CIPHER_get_name)
#define SSL_CTX_add_client_CA (*cgrpc__ossl.p_SSL_CTX_add_client_CA)
#define SSL_CTX_check_private_key (*cgrpc__ossl.p_SSL_CTX_check_private_key)
#define SSL_CTX_ctrl (*cgrpc__ossl.p_SSL_CTX_ctrl)
#define SSL_CTX_free (*cgrpc__ossl.p_SSL_CTX_free)
#define SSL_CTX_get_cert_store (*cgrpc__ossl.p_SSL_CTX_get_cert_store)
#define SSL_CTX_get_ex_data (*cgrpc__ossl.p_SSL_CTX_get_ex_data)
#define SSL_CTX_new (*cgrpc__ossl.p_SSL_CTX_new)
#define SSL_CTX_sess_set_new_cb (*cgrpc__ossl.p_SSL_CTX_sess_set_new_cb)
#define SSL_CTX_set1_cert_store (*cgrpc__ossl.p_SSL_CTX_set1_cert_store)
#define SSL_CTX_set_alpn_protos (*cgrpc__ossl.p_SSL_CTX_set_alpn_protos)
#define SSL_CTX_set_alpn_select_cb (*cgrpc__ossl.p_SSL_CTX_set_alpn_select_cb)
#define SSL_CTX_set_ex_data (*cgrpc__ossl.p_SSL_CTX_set_ex_data)
#define SSL_CTX_set_options (*cgrpc__ossl.p_SSL_CTX_set_options)
#define SSL_CTX_set_session_id_context                                         \
  (*cgrpc__ossl.p_SSL_CTX_set_session_id_context)
#define SSL_CTX_set_verify (*cgrpc__ossl.p_SSL_CTX_set_verify)
#define SSL_CTX_up_ref (*cgrpc__ossl.p_SSL_CTX_up_ref)
#define SSL_CTX_use_PrivateKey (*cgrpc__ossl.p_SSL_CTX_use_PrivateKey)
#define SSL_CTX_use_certificate (*cgrpc__ossl.p_SSL_CTX_use_certificate)
#define SSL_SESSION_dup (*cgrpc__ossl.p_SSL_SESSION_dup)
#define SSL_SESSION_free (*cgrpc__ossl.p_SSL_SESSION_free)
#define SSL_SESSION_up_ref (*cgrpc__ossl.p_SSL_SESSION_up_ref)
#define SSL_ctrl (*cgrpc__ossl.p_SSL_ctrl)
#define SSL_do_handshake (*cgrpc__ossl.p_SSL_do_handshake)
#define SSL_free (*cgrpc__ossl.p_SSL_free)
#define SSL_get0_alpn_selected (*cgrpc__ossl.p_SSL_get0_alpn_selected)
#define SSL_get0_param (*cgrpc__ossl.p_SSL_get0_param)
#define SSL_get0_peer_certificate (*cgrpc__ossl.p_SSL_get0_peer_certificate)
#define SSL_get_SSL_CTX (*cgrpc__ossl.p_SSL_get_SSL_CTX)
#define SSL_get_current_cipher (*cgrpc__ossl.p_SSL_get_current_cipher)
#define SSL_get_error (*cgrpc__ossl.p_SSL_get_error)
#define SSL_get_verify_result (*cgrpc__ossl.p_SSL_get_verify_result)
#define SSL_get_version (*cgrpc__ossl.p_SSL_get_version)
#define SSL_has_pending (*cgrpc__ossl.p_SSL_has_pending)
#define SSL_is_init_finished (*cgrpc__ossl.p_SSL_is_init_finished)
#define SSL_new (*cgrpc__ossl.p_SSL_new)
#define SSL_read (*cgrpc__ossl.p_SSL_read)
#define SSL_session_reused (*cgrpc__ossl.p_SSL_session_reused)
#define SSL_set_accept_state (*cgrpc__ossl.p_SSL_set_accept_state)
#define SSL_set_bio (*cgrpc__ossl.p_SSL_set_bio)
#define SSL_set_connect_state (*cgrpc__ossl.p_SSL_set_connect_state)
#define SSL_set_session (*cgrpc__ossl.p_SSL_set_session)
#define SSL_shutdown (*cgrpc__ossl.p_SSL_shutdown)
#define SSL_write (*cgrpc__ossl.p_SSL_write)
#define TLS_client_method (*cgrpc__ossl.p_TLS_client_method)
#define TLS_server_method (*cgrpc__ossl.p_TLS_server_method)
#define X509_NAME_print_ex (*cgrpc__ossl.p_X509_NAME_print_ex)
#define X509_STORE_add_cert (*cgrpc__ossl.p_X509_STORE_add_cert)
#define X509_STORE_free (*cgrpc__ossl.p_X509_STORE_free)
#define X509_STORE_new (*cgrpc__ossl.p_X509_STORE_new)
#define X509_STORE_set_default_paths                                           \
  (*cgrpc__ossl.p_X509_STORE_set_default_paths)
#define X509_VERIFY_PARAM_set1_host (*cgrpc__ossl.p_X509_VERIFY_PARAM_set1_host)
#define X509_VERIFY_PARAM_set1_ip_asc                                          \
  (*cgrpc__ossl.p_X509_VERIFY_PARAM_set1_ip_asc)
#define X509_free (*cgrpc__ossl.p_X509_free)
#define X509_get_ext_d2i (*cgrpc__ossl.p_X509_get_ext_d2i)
#define X509_get_subject_name (*cgrpc__ossl.p_X509_get_subject_name)
#define X509_verify_cert_error_string                                          \
  (*cgrpc__ossl.p_X509_verify_cert_error_string)
#endif

#endif /* CGRPC_IO_OSSL_H */
