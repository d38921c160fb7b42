#ifndef IMAGEQUEUE_CHIREDIS_SHIM_H
#define IMAGEQUEUE_CHIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <poll.h>

/* Typed accessors: Swift sees redisReply's union-free fields directly, but the
   reply returned by redisGetReplyFromReader is a void **. */
static inline int iq_redis_get_reply(redisContext *c, redisReply **reply) {
    void *raw = NULL;
    int status = redisGetReplyFromReader(c, &raw);
    *reply = (redisReply *)raw;
    return status;
}

static inline struct timeval iq_timeval_ms(long ms) {
    struct timeval tv;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

#endif
