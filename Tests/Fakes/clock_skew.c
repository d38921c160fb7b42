/*
 * LD_PRELOAD shim for the clock-skew test: moves this process's wall clock by
 * IMAGEQUEUE_TEST_CLOCK_SKEW_SECONDS (may be negative). Only the realtime clock moves
 * (clock_gettime CLOCK_REALTIME and its variants, gettimeofday, time); the monotonic clocks
 * do not, as on a host whose wall clock is simply wrong. Nothing else is touched, unlike
 * libfaketime, which breaks the Swift runtime's argument handling here.
 *   cc -shared -fPIC -O2 -o clock_skew.so clock_skew.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long skew(void) {
    const char *text = getenv("IMAGEQUEUE_TEST_CLOCK_SKEW_SECONDS");
    return text ? strtol(text, NULL, 10) : 0;
}

static int realtime(clockid_t id) {
    return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE || id == CLOCK_TAI;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int result = real(id, ts);
    if (result == 0 && ts && realtime(id)) ts->tv_sec += skew();
    return result;
}

int gettimeofday(struct timeval *tv, void *tz) {
    static int (*real)(struct timeval *, void *);
    if (!real) real = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
    int result = real(tv, tz);
    if (result == 0 && tv) tv->tv_sec += skew();
    return result;
}

time_t time(time_t *out) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (out) *out = now.tv_sec;
    return now.tv_sec;
}

/*
 * Deadlines handed to the kernel as absolute realtime instants were computed from the moved
 * clock: move them back, so that the kernel (whose clock did not move) waits as long as the
 * process meant, as on a host whose whole clock is off.
 */
#include <pthread.h>
#include <semaphore.h>
#include <sys/timerfd.h>

static void unskew(struct timespec *ts) { ts->tv_sec -= skew(); }

static int realtime_fds[1024];

int timerfd_create(int clockid, int flags) {
    static int (*real)(int, int);
    if (!real) real = (int (*)(int, int))dlsym(RTLD_NEXT, "timerfd_create");
    int fd = real(clockid, flags);
    if (fd >= 0 && fd < 1024) realtime_fds[fd] = realtime(clockid);
    return fd;
}

int timerfd_settime(int fd, int flags, const struct itimerspec *new_value, struct itimerspec *old_value) {
    static int (*real)(int, int, const struct itimerspec *, struct itimerspec *);
    if (!real) real = (int (*)(int, int, const struct itimerspec *, struct itimerspec *))dlsym(RTLD_NEXT, "timerfd_settime");
    if ((flags & TFD_TIMER_ABSTIME) && fd >= 0 && fd < 1024 && realtime_fds[fd] && new_value
        && (new_value->it_value.tv_sec || new_value->it_value.tv_nsec)) {
        struct itimerspec moved = *new_value;
        unskew(&moved.it_value);
        return real(fd, flags, &moved, old_value);
    }
    return real(fd, flags, new_value, old_value);
}

int clock_nanosleep(clockid_t id, int flags, const struct timespec *request, struct timespec *remain) {
    static int (*real)(clockid_t, int, const struct timespec *, struct timespec *);
    if (!real) real = (int (*)(clockid_t, int, const struct timespec *, struct timespec *))dlsym(RTLD_NEXT, "clock_nanosleep");
    if ((flags & TIMER_ABSTIME) && realtime(id) && request) {
        struct timespec moved = *request;
        unskew(&moved);
        return real(id, flags, &moved, remain);
    }
    return real(id, flags, request, remain);
}

/* pthread_cond_timedwait measures its deadline on the condition's clock: CLOCK_REALTIME
 * unless the condition was made with another; the shim assumes the default. */
int pthread_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mutex, const struct timespec *abstime) {
    static int (*real)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
    if (!real) real = (int (*)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *))dlsym(RTLD_NEXT, "pthread_cond_timedwait");
    struct timespec moved = *abstime;
    unskew(&moved);
    return real(cond, mutex, &moved);
}

int sem_timedwait(sem_t *sem, const struct timespec *abstime) {
    static int (*real)(sem_t *, const struct timespec *);
    if (!real) real = (int (*)(sem_t *, const struct timespec *))dlsym(RTLD_NEXT, "sem_timedwait");
    struct timespec moved = *abstime;
    unskew(&moved);
    return real(sem, &moved);
}
