/*
 * lcloud.h - the local provider's server: the Auto Scaling / EC2 Query API
 * subset of lcapi.h over HTTP on loopback (libmicrohttpd), every request's
 * SigV4 signature verified, instances of lcworld.h run as local processes,
 * fault injection, and an admin endpoint.
 *
 * Requests: POST / with a form-encoded body. The service is the one of the
 * SigV4 credential scope (autoscaling or ec2), else the Host header's first
 * label, else the action's. Authentication failures answer in the
 * service's error shape: SignatureDoesNotMatch (403), InvalidClientTokenId
 * (403; EC2 answers AuthFailure 401 as AWS does), IncompleteSignature (400),
 * MissingAuthenticationToken (403), RequestExpired (400).
 *
 * Faults (counted over authenticated API calls, 1-based; 0 = off):
 *   throttle_every N   every Nth call: Throttling (ASG) / RequestLimitExceeded
 *                      (EC2), HTTP 400, nothing changed
 *   error_every N      every Nth call: InternalFailure (ASG) / InternalError
 *                      (EC2), HTTP 500, nothing changed
 *   cut_every N        every Nth call runs, but its body is cut in half
 *   page_size N        DescribeInstances pages hold at most N instances
 *   deny ACTIONS       comma-separated actions (or "all") answered
 *                      AccessDenied (ASG) / UnauthorizedOperation (EC2), 403
 *   visibility_ms      new instances stay out of DescribeInstances this long
 *
 * Processes: when an instance turns InService, instance_cmd runs through
 * /bin/sh in a new session (its own process group) with {id}, {ip} (also
 * {addr}), {port}, {group} replaced by shell-quoted values. Termination
 * sends SIGTERM to the group, runs stop_cmd (same placeholders, in the
 * background), and SIGKILLs the group after kill_ms. The provider reaps its
 * children; a command that exits on its own leaves the instance running (a
 * VM whose agent crashed is still a VM). On lcloud_stop every instance is
 * terminated and its group signalled the same way before lcloud_run returns.
 * Commands get the provider's environment (as it was at lcloud_new) minus
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
 * AWS_SECURITY_TOKEN and any variable whose value holds one of the
 * configured secret keys: the provider's credentials never reach an instance.
 *
 * Admin (no signature; refused unless the client is on 127.0.0.0/8):
 *   GET  /_admin/state                      JSON: groups, instances, faults, calls
 *   POST /_admin/instances/ID/kill          SIGKILL the instance's processes
 *   POST /_admin/instances/ID/terminate     out of band: terminated, replaced
 *   POST /_admin/instances/ID/untag         drop its group tag (as one attached
 *                                           with AttachInstances): tag filters skip it
 *   POST /_admin/faults?throttle_every=N&error_every=N&cut_every=N&page_size=N
 *                      &visibility_ms=N&deny=A,B    set (only those given)
 *   POST /_admin/groups/NAME?desired=N      set a group's desired capacity
 *
 * One thread, one loop: lcloud_run serves and ticks (every 50 ms at most)
 * until lcloud_stop (async-signal-safe). Logs: one line per mutation or
 * failed call (action, status, code), successful describes at debug level;
 * never a secret.
 */
#ifndef SPINUP_LCLOUD_H
#define SPINUP_LCLOUD_H

#include <stddef.h>
#include <stdint.h>

#include "../model/err.h"
#include "lcworld.h"

#define LCLOUD_MAX_KEYS 16
#define LCLOUD_BODY_MAX (1024 * 1024)     /* request body bytes */
#define LCLOUD_CMD_MAX 8192               /* an expanded command */
#define LCLOUD_DENY_MAX 512               /* the deny list */
#define LCLOUD_DEFAULT_KILL_MS 3000

struct lcloud_key {
	const char *access_key_id;
	const char *secret_access_key;
};

struct lcloud_group_config {
	const char *name;
	int min, max, desired;
};

struct lcloud_faults {
	int throttle_every, error_every, cut_every, page_size;
	int64_t visibility_ms;
	char deny[LCLOUD_DENY_MAX];
};

struct lcloud_config {
	const char *listen_addr;        /* IPv4 on loopback, "127.0.0.1" */
	int port;                       /* 0: any free port */
	const char *region;             /* requests must be signed for it */
	struct lcloud_key keys[LCLOUD_MAX_KEYS];
	size_t nkeys;
	struct lcloud_group_config groups[LCWORLD_MAX_GROUPS];
	size_t ngroups;
	int64_t boot_ms, terminate_ms, gone_ms, kill_ms;
	int net;                        /* instances get 127.<net>.x.y */
	enum lcworld_scale_in scale_in;
	int agent_port;                 /* {port}; also probed before an address is given */
	const char *instance_cmd;       /* NULL: instances run nothing */
	const char *stop_cmd;           /* NULL: none */
	const char *instance_log_dir;   /* NULL: commands inherit stdout/stderr */
	uint64_t seed;                  /* instance ids */
	struct lcloud_faults faults;
};

struct lcloud;

/* Bind and prepare. 0, SP_EINVAL (bad config), SP_EIO (cannot bind), SP_ENOMEM. */
int lcloud_new(const struct lcloud_config *cfg, struct lcloud **out, struct err *e);
int lcloud_port(const struct lcloud *lc);
/* Serve until lcloud_stop; then stop every instance. 0 or SP_EIO. */
int lcloud_run(struct lcloud *lc, struct err *e);
/* Async-signal-safe. */
void lcloud_stop(struct lcloud *lc);
void lcloud_free(struct lcloud *lc);

/*
 * Set faults from "name=value" pairs (the admin query or a flag):
 * 0, or SP_EINVAL naming the bad pair. Exposed for main's flags.
 */
int lcloud_faults_set(struct lcloud_faults *f, const char *name, const char *value,
		      struct err *e);

#endif
