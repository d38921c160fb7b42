#ifndef IMAGEQUEUE_COPENSSL_SHIM_H
#define IMAGEQUEUE_COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>

/* Functions for what OpenSSL's headers define as macros, which Swift cannot call. */
static inline int iq_ssl_ctx_set_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

static inline void iq_ssl_ctx_set_modes(SSL_CTX *ctx) {
    /* SSL_write may write part of a buffer, and a retried write may pass the rest from a new
       address: the connection's output buffer moves as it grows. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

static inline int iq_ssl_set_sni(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

static inline int iq_err_reason(unsigned long code) { return ERR_GET_REASON(code); }
static inline int iq_err_is_ssl_library(unsigned long code) { return ERR_GET_LIB(code) == ERR_LIB_SSL; }
static inline int iq_err_is_key_mismatch(unsigned long code) {
    return ERR_GET_LIB(code) == ERR_LIB_X509 && ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH;
}

#endif
