#include "base/log.h"
#include "base/clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static int log_level = CMPR_LOG_INFO;
static int use_syslog;
static const char *const names[] = { "error", "warning", "info", "debug" };

void cmpr_log_set_level(int level) { log_level = level; }

void
cmpr_log_use_syslog(const char *ident)
{
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    use_syslog = 1;
}
int cmpr_log_get_level(void) { return log_level; }

int
cmpr_log_level_from_name(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

void
cmpr_log(int level, const char *fmt, ...)
{
    char line[1024], ts[32];
    va_list ap;
    time_t now;
    struct tm tm;

    if (level > log_level)
        return;
    if (use_syslog) {
        static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        syslog(prio[level < 0 ? 0 : level > 3 ? 3 : level], "%s", line);
        return;
    }
    now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* one write per line so concurrent workers do not interleave */
    fprintf(stderr, "%s cmprouter[%s] %s\n", ts, names[level < 0 ? 0 : level > 3 ? 3 : level], line);
}

void
cmpr_log_limited(struct cmpr_log_limit *lim, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    long now;

    if (level > log_level)
        return;
    now = cmpr_mono_ms();
    if (lim->window_ms == 0 || now - lim->window_ms >= 1000) {
        if (lim->left_out > 0)
            cmpr_log(level, "(%lu more lines like the next left out: at most %d a second)",
                     lim->left_out, CMPR_LOG_BURST);
        lim->window_ms = now;
        lim->in_window = 0;
        lim->left_out = 0;
    }
    if (lim->in_window >= CMPR_LOG_BURST) {
        lim->left_out++;
        return;
    }
    lim->in_window++;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    cmpr_log(level, "%s", line);
}
