/*
 * metrics.h - spinupd's health and metrics HTTP endpoint (libmicrohttpd),
 * on a loopback address only, driven by the loop's poll() (MHD_USE_EPOLL:
 * no thread of its own).
 *
 *   GET /healthz   200 "ok" when the last pass reached the database, else 503
 *   GET /metrics   Prometheus text: passes, failed passes, actions by type,
 *                  pass duration histogram, leader, epoch, notify wakeups,
 *                  workspaces by phase and drift findings after the last pass
 *   GET /status    (and /) the same for a person, a few lines of text
 *
 * The server reads the loop's counters (borrowed, same thread) when it
 * answers. Errors: SP_EINVAL (address not loopback host:port), SP_EUNAVAIL
 * (cannot listen), SP_ENOMEM.
 */
#ifndef SPINUP_RECONCILER_METRICS_H
#define SPINUP_RECONCILER_METRICS_H

#include <stdint.h>

#include "model/err.h"
#include "model/strbuf.h"

struct loop_metrics;
struct metrics_srv;

int metrics_srv_new(const char *addr, const struct loop_metrics *m, struct metrics_srv **out,
		    struct err *e);
void metrics_srv_free(struct metrics_srv *s);
/* The fd to poll for input, and the longest poll timeout it allows (-1: none). */
int metrics_srv_fd(const struct metrics_srv *s);
int metrics_srv_timeout(const struct metrics_srv *s);
/* Serve what is ready; never blocks. */
void metrics_srv_run(struct metrics_srv *s);

/* The Prometheus text for m. */
int metrics_format(const struct loop_metrics *m, struct strbuf *out);
/* The /status text for m at now_ms (ms since the epoch). */
int metrics_status(const struct loop_metrics *m, int64_t now_ms, struct strbuf *out);

#endif
