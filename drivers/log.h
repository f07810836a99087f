/*
 * log.h - the daemon log, in OpenBSD's shape.
 *
 * One line per event on stderr, prefixed with an ISO-8601 UTC time and the
 * level, fields as key=value. The only global state of the project.
 * model/ never logs; drivers/ log only at debug level; the loop logs once,
 * where an error is handled. Never pass a secret to these functions.
 *
 *   log_warn   - message plus ": strerror(errno)"
 *   log_warnx  - message only
 *   fatalx     - log and exit(1); only for use from main() paths
 */
#ifndef SPINUP_LOG_H
#define SPINUP_LOG_H

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Set the program name and the most verbose level printed. */
void log_init(const char *progname, enum log_level max);
void log_setlevel(enum log_level max);
enum log_level log_getlevel(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
