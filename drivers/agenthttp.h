/*
 * agenthttp.h - the "http" agent client: struct agentc over the
 * spinup-agent HTTP+JSON API (agent/API.md), every request signed with
 * agentsig (HMAC-SHA256 over method, path, timestamp, nonce, fencing epoch
 * and body hash).
 *
 * observe() polls every target concurrently on one curl multi handle
 * (health and list per agent, each with its own timeout), so a pass over N
 * agents costs about one round trip. An agent that does not answer, answers
 * an error, or answers something that fails the named limits of
 * drivers/agentwire.h is reported observed = 0 with the reason in error -
 * unknown, never empty. out[] must be initialised by the caller
 * (obs_agent_init or zeroed); observe releases and refills each entry.
 * observe returns 0 when it could try, even if agents failed, except that
 * it returns SP_EFENCED (after filling out[]) when any agent refused the
 * epoch as stale: the caller is no longer leader.
 *
 * Mutations (ensure, sync, stop, remove) block for at most
 * call_timeout_ms (default AGENTHTTP_CALL_TIMEOUT_MS), and none waits for
 * the agent's sync command, which may take minutes (an S3 sync): sync,
 * stop and remove are sent with {"wait": false}, so an agent that has to
 * sync first answers 202 at once and finishes in the background
 * (agent/API.md). 0 then means "accepted", not "done": the stop or remove
 * still happens only after a successful sync, a failed sync leaves the
 * container running with last_sync failed, and the outcome shows in the
 * next observation (struct obs_container: pending, last_sync, state). An
 * ensure is answered at once too (restore and start go on in the
 * background). HTTP 409 stale_epoch is SP_EFENCED; other agent errors map
 * by their JSON "code" (agentwire_error_code); no answer within the
 * timeout is SP_ETIMEOUT (the mutation may still have happened: all are
 * idempotent). Connections are kept alive between calls.
 * Not thread-safe: one driver per thread.
 */
#ifndef SPINUP_AGENTHTTP_H
#define SPINUP_AGENTHTTP_H

#include <stddef.h>
#include <stdint.h>

#include "agentc.h"
#include "../model/strbuf.h"

/*
 * Default bound of one mutation call (ms). No call waits for a sync
 * command, so this only covers the network and an agent busy for a moment
 * (its docker runtime blocks its loop on Engine calls); spinupd lowers it
 * further to fit well inside its lease (reconciler/loop.c).
 */
#define AGENTHTTP_CALL_TIMEOUT_MS 10000

struct agenthttp_opts {
	const char *secret_file;      /* required; refused when group/others can read it */
	long connect_timeout_ms;      /* 0: 2000 */
	long observe_timeout_ms;      /* per health or list call; 0: 5000 */
	long call_timeout_ms;         /* per mutation; 0: AGENTHTTP_CALL_TIMEOUT_MS */
	long max_connections;         /* concurrent connections in observe; 0: 128 */
};

/* A new driver; NULL with e set (secret refused, allocation failure). */
struct agentc *agenthttp_new(const struct agenthttp_opts *o, struct err *e);

/*
 * Knobs for agenthttp_request, for tests and the `spinup-agent call` tool:
 * timestamp 0 means now, nonce NULL means a fresh random one.
 */
struct agenthttp_raw {
	int64_t timestamp;
	const char *nonce;
};

/*
 * One signed request with the given method, path ("/v1/health") and body
 * (NULL for none); the HTTP status goes to *status and the body to resp
 * (appended, capped at AGENTWIRE_RESPONSE_MAX). Returns 0 whenever an HTTP
 * answer arrived, whatever its status; SP_EIO / SP_ETIMEOUT when none did,
 * SP_EINVAL if a is not an http driver.
 */
int agenthttp_request(struct agentc *a, const struct agent_target *t, int64_t epoch,
		      const char *method, const char *path, const char *body,
		      const struct agenthttp_raw *raw, long *status, struct strbuf *resp,
		      struct err *e);

#endif
