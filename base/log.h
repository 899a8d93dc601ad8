/* Logging to stderr with levels; every line about a message names the medium,
 * the peer and the transactionID (the caller formats them in). */
#ifndef CMPR_BASE_LOG_H
#define CMPR_BASE_LOG_H

enum cmpr_log_level { CMPR_LOG_ERROR = 0, CMPR_LOG_WARNING, CMPR_LOG_INFO, CMPR_LOG_DEBUG };

void cmpr_log_set_level(int level);
int cmpr_log_get_level(void);
/* "error", "warning", "info", "debug"; -1 if unknown */
int cmpr_log_level_from_name(const char *name);
void cmpr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* From now on to syslog (facility daemon) instead of stderr. */
void cmpr_log_use_syslog(const char *ident);

/* Lines a peer can cause (a refused frame, a bad request, a timeout) go
 * through a limit, one per listener: at most CMPR_LOG_BURST of them a
 * second; the first line after a quiet second says how many were left out.
 * One thread per limit (zeroed to start). */
#define CMPR_LOG_BURST 20
struct cmpr_log_limit {
    long window_ms;             /* monotonic ms the current second began */
    unsigned in_window;
    unsigned long left_out;
};
void cmpr_log_limited(struct cmpr_log_limit *lim, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define cmpr_log_error(...) cmpr_log(CMPR_LOG_ERROR, __VA_ARGS__)
#define cmpr_log_warn(...)  cmpr_log(CMPR_LOG_WARNING, __VA_ARGS__)
#define cmpr_log_info(...)  cmpr_log(CMPR_LOG_INFO, __VA_ARGS__)
#define cmpr_log_debug(...) cmpr_log(CMPR_LOG_DEBUG, __VA_ARGS__)

#endif
