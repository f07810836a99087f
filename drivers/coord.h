/*
 * coord.h - Redis coordination (hiredis): the leader lease and the
 * runtime mirror.
 *
 * Lease: one key holding the holder's id, set with SET key id NX PX ttl,
 * renewed only by its holder (compare-and-pexpire in a Lua script),
 * released only by its holder (compare-and-delete). Whoever holds it leads;
 * the Postgres fencing epoch (drivers/pgstate.h) is bumped on acquisition,
 * so a leader that lost the lease without noticing has its writes refused.
 *
 * Mirror (fast UI reads; Postgres stays the truth): one hash per workspace
 * spinup:ws:<id> with fields phase, instance, ip, url, updated (ms), the
 * set spinup:ws:index of mirrored ids, and a message on the channel
 * spinup:phase ({"workspace_id":N,"phase":"READY",...}) for each phase
 * change. After a reconnection, and after any failed mirror write (an
 * error reply such as WRONGTYPE as much as a dropped connection),
 * coord_needs_rebuild() is true until a coord_mirror_rebuild() succeeds:
 * the whole mirror is rewritten (each hash deleted and written anew) and
 * ids no longer present are removed, so nothing written while Redis was
 * away or refusing is lost. Every reply of a pipeline is read, error or
 * not, so the next command on the connection gets its own reply.
 *
 * Every call blocks for at most the configured timeout (connect and each
 * command: redisConnectWithTimeout, redisSetTimeout). A broken connection
 * is dropped and the next call reconnects. Errors: SP_EUNAVAIL (cannot
 * connect, Redis error), SP_ETIMEOUT, SP_EIO (connection lost), SP_EINVAL
 * (bad URL), SP_EPROTO (unexpected reply), SP_ENOMEM.
 */
#ifndef SPINUP_COORD_H
#define SPINUP_COORD_H

#include <stddef.h>
#include <stdint.h>

#include "model/err.h"

#define COORD_HOLDER_MAX 127
#define COORD_TIMEOUT_MS_DEFAULT 1000
#define COORD_WS_PREFIX "spinup:ws:"
#define COORD_WS_INDEX "spinup:ws:index"
#define COORD_PHASE_CHANNEL "spinup:phase"
#define COORD_PIPELINE_MAX 512        /* commands sent before reading replies */
#define COORD_MIRROR_MAX 1000000      /* ids one rebuild handles */

struct coord;

/*
 * Parse url (redis://[:password@]host[:port][/db]) and remember it; the
 * connection is made by the first call (and again after a failure). holder
 * is our lease value (e.g. "host:pid:random"). timeout_ms 0: the default.
 */
int coord_new(const char *url, const char *holder, int timeout_ms, struct coord **out,
	      struct err *e);
void coord_free(struct coord *c);

/* Connect now if not connected. 0 or the error. */
int coord_connect(struct coord *c, struct err *e);
int coord_connected(const struct coord *c);

/* Take the lease if free: *held = 1 when we hold it after the call. */
int coord_lease_acquire(struct coord *c, const char *key, int ttl_ms, int *held, struct err *e);
/* Extend our lease: *held = 0 when it is no longer ours (expired, taken). */
int coord_lease_renew(struct coord *c, const char *key, int ttl_ms, int *held, struct err *e);
/* Delete the lease if ours (*released = 1), else leave it. released may be NULL. */
int coord_lease_release(struct coord *c, const char *key, int *released, struct err *e);
/* The current holder's id ("" when free). */
int coord_lease_holder(struct coord *c, const char *key, char *out, size_t outsz,
		       struct err *e);

/* One workspace as the mirror shows it. */
struct coord_ws {
	int64_t workspace_id;
	const char *phase;            /* "READY", ... */
	const char *instance;         /* "" when none */
	const char *ip;
	const char *url;
	int64_t updated;              /* ms */
	int phase_changed;            /* publish on spinup:phase */
};

/* Write these entries (pipelined) and publish their phase changes. */
int coord_mirror_put(struct coord *c, const struct coord_ws *v, size_t n, struct err *e);
/* Remove workspaces from the mirror (deleted rows). */
int coord_mirror_del(struct coord *c, const int64_t *ids, size_t n, struct err *e);
/* Whether the mirror must be rebuilt (set on every new connection and failed write). */
int coord_needs_rebuild(const struct coord *c);
/* Rewrite the whole mirror to exactly v (stale ids removed); clears needs_rebuild. */
int coord_mirror_rebuild(struct coord *c, const struct coord_ws *v, size_t n, struct err *e);

#endif
