/*
 * agentd_int.h - the agent's private types, shared by its parts:
 *   agentd.c      lifecycle, the loop, signals, drain
 *   containers.c  container records, restore/sync jobs, queued ops, supervision
 *   state.c       the state file (save, load, re-adoption)
 *   api.c         the HTTP API: auth, routing, handlers
 * Not for use outside agent/. One thread: nothing here is locked.
 */
#ifndef SPINUP_AGENT_AGENTD_INT_H
#define SPINUP_AGENT_AGENTD_INT_H

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <microhttpd.h>

#include "cmdtpl.h"
#include "runtime.h"
#include "../drivers/agentsig.h"
#include "../drivers/agentwire.h"
#include "../drivers/log.h"
#include "../model/strbuf.h"

#include "agentd.h"

#define STATE_FILE "state.json"
#define STATE_MAX (4 << 20)               /* bytes of the state file */
#define SNAPSHOT_MARKER ".spinup-snapshot"  /* written before every sync-back */
#define TICK_MS 1000
#define PROBE_TIMEOUT_MS 2000
#define PROBE_FIRST_MS 25                 /* first probes after a start: 25, 50, 100 ... ms */
#define PROBE_NOT_READY_MS 500
#define PROBE_READY_MS 5000
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define STABLE_AFTER_MS 60000             /* a run this long resets the backoff */
#define JOB_TAIL_MAX 160                  /* bytes of a failed command's output in messages */

enum phase { PH_RESTORING, PH_RUNNING, PH_BACKOFF, PH_STOPPED, PH_FAILED, PH_MAX };
enum job_kind { JOB_NONE, JOB_RESTORE, JOB_SYNC, JOB_PREPARE };
enum op_kind { OP_SYNC, OP_STOP, OP_REMOVE, OP_MAX };   /* in order of strength */

/*
 * One HTTP request; the connection's con_cls. Ops wait in a container's
 * queue. A request sent with {"wait": false} whose op must wait for a sync
 * is answered 202 at once and leaves a detached copy in the queue (no
 * connection, owned by the queue, freed when its op is answered).
 */
struct reqctx {
	struct agentd *a;
	struct MHD_Connection *conn;
	struct strbuf body;
	int too_large;
	int late;               /* arrived while draining: refused, never routed */
	int suspended;
	unsigned status;
	char *resp;             /* the response to send, once decided */
	enum op_kind op;
	int64_t wsid;
	int sync_first;
	int wait;               /* answer when done (default), or 202 once queued */
	int detached;           /* a queued copy nobody waits for */
	int synced;             /* this op's sync ran and succeeded */
	int sync_passed;        /* the op may go on: synced, or nothing to sync with */
	struct reqctx *next;
};

struct job {
	pid_t pid;
	enum job_kind kind;
	int64_t deadline;       /* mono ms */
	int timed_out;
	struct reqctx *op;      /* the request waiting for this sync, or NULL */
};

struct ct {
	struct container_req req;
	char name[OBS_CONTAINER_NAME_MAX + 1];
	char dir[PATH_MAX];
	int port;
	enum phase phase;
	struct rt_handle h;
	int ready, restarts, streak, dirty, restore_failed;
	int probe_tries;                          /* failed probes since start: quick at first */
	int64_t started_at, last_sync_at;         /* wall ms */
	enum sync_result last_sync;
	char message[OBS_MSG_MAX + 1];
	int64_t run_since, next_restart, next_sync, next_probe, kill_at;   /* mono ms */
	struct job job;
	struct reqctx *ops;
	CURL *probe;
};

struct agentd {
	struct agentd_config cfg;
	char addr[INET_ADDRSTRLEN];
	int port;
	char state_path[PATH_MAX];
	char builtin_cmd[PATH_MAX + 128];
	struct agentsig_key key;
	struct agentsig_replay *replay;
	int64_t max_epoch;
	struct runtime *rt;
	struct MHD_Daemon *mhd;
	CURLM *multi;
	struct ct *cts[AGENTD_CAPACITY_MAX];
	size_t nct;
	int live_reqs;
	int draining;
	int64_t drain_deadline;
};

/* containers.c */
const char *agentd_phase_name(enum phase p);
int64_t agentd_mono_ms(void);    /* for deadlines */
int64_t agentd_wall_ms(void);    /* for reported times */
struct ct *agentd_ct_find(struct agentd *a, int64_t id);
/* Fill s for c; log receives the workspace's log path. */
void agentd_ct_spec(struct agentd *a, struct ct *c, struct rt_spec *s, char *log, size_t logsz);
json_t *agentd_ct_json(const struct ct *c);          /* new reference, the API's container */
void agentd_ct_free(struct agentd *a, struct ct *c); /* drop the record (not the workspace) */
void agentd_ct_restore(struct agentd *a, struct ct *c);          /* restore, then start */
void agentd_ct_start_workspace(struct agentd *a, struct ct *c);  /* files in place: start */
/* Files in place: run the runtime's prepare step (a job) if it has one, then start. */
void agentd_ct_launch(struct agentd *a, struct ct *c);
/* Run c's queued ops until one must wait for a sync job. */
void agentd_ct_advance(struct agentd *a, struct ct *c);
/* Decide a request's answer (resumes its connection when suspended); takes body. */
void agentd_op_respond(struct reqctx *r, unsigned status, json_t *body);
void agentd_op_fail(struct reqctx *r, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
struct reqctx *agentd_op_pop(struct ct *c);
/*
 * Replace r, queued on c, by a detached copy that finishes without a
 * connection; r can then be answered 202. NULL when out of memory (r stays).
 */
struct reqctx *agentd_op_detach(struct ct *c, struct reqctx *r);
const char *agentd_op_name(enum op_kind k);
json_t *agentd_err_json(const char *code, const char *msg);  /* {"code","message"} */
void agentd_probes_collect(struct agentd *a);   /* readiness probe results */
/* Start the probes that are due; returns when the next one is (mono ms, INT64_MAX none). */
int64_t agentd_probes_start(struct agentd *a, int64_t now);
void agentd_supervise(struct agentd *a);        /* the one-second tick */
void agentd_reap(struct agentd *a);             /* after SIGCHLD */

/* state.c */
void agentd_state_save(struct agentd *a);       /* failures are logged, not fatal */
int agentd_state_load(struct agentd *a, struct err *e);

/* api.c: libmicrohttpd callbacks, cls is the struct agentd */
enum MHD_Result agentd_on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls);
void agentd_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe);
/* Containers holding a slot (not stopped, not failed). */
size_t agentd_active_count(const struct agentd *a);

#endif
