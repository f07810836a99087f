/*
 * agentd.h - spinup-agent, the program on each instance that runs the
 * workspaces of that instance. API: agent/API.md.
 *
 * One thread, one loop: libmicrohttpd in external-poll mode (epoll), the
 * readiness probes on a curl multi handle, child processes (workspaces,
 * restore and sync commands) reaped on SIGCHLD through a self-pipe, and a
 * one-second supervision tick, all waited on by one curl_multi_poll().
 * Requests that must wait for a sync (sync, stop, remove) are suspended
 * and resumed when the sync command exits, so health and list keep
 * answering meanwhile; sent with {"wait": false} they are answered 202 at
 * once and go on detached from their connection (API.md).
 *
 * Every container record is kept in <data-dir>/state.json (rewritten
 * atomically after each change) together with the highest fencing epoch
 * seen; a restarted agent re-adopts the workspaces it finds alive there.
 *
 * Errors: agentd_new returns NULL with e set (bad configuration, secret
 * file refused, listen address taken); agentd_run returns 0 after a clean
 * SIGTERM/SIGINT drain.
 */
#ifndef SPINUP_AGENT_AGENTD_H
#define SPINUP_AGENT_AGENTD_H

#include "../model/err.h"

#define AGENTD_VERSION "0.1.0"
#define AGENTD_CAPACITY_MAX 256      /* containers per agent, whatever --capacity says */
#define AGENTD_CONNECTIONS_MAX 256   /* concurrent HTTP connections */

/* String fields are lent: they must outlive the agent (argv does). */
struct agentd_config {
	const char *listen;          /* "ADDR:PORT" */
	const char *id;              /* agent id, reported by health ("" ok) */
	const char *secret_file;
	const char *data_dir;
	const char *runtime;         /* "process" or "docker" */
	const char *workspace_cmd;   /* process runtime template; NULL = built-in workspace */
	const char *self_exe;        /* path of this binary, for the built-in workspace */
	int port_lo, port_hi;        /* workspace ports */
	int capacity;
	const char *sync_cmd;        /* template: {dir} {bucket} {prefix} {id} {name}; NULL none */
	const char *restore_cmd;     /* same placeholders; NULL none */
	int sync_interval_s;         /* periodic sync of running workspaces; 0 off */
	int sync_timeout_s;          /* a sync or restore command running longer is killed */
	int drain_timeout_s;         /* SIGTERM: how long to finish in-flight requests */
	int stop_grace_s;            /* SIGTERM to SIGKILL for a stopped workspace */
	const char *docker_socket;   /* docker runtime */
	const char *docker_url;      /* docker runtime base URL ("http://localhost/v1.43") */
	int docker_port;             /* port the image listens on */
};

/* Defaults for every field (listen 127.0.0.1:7070, capacity 8, ...). */
void agentd_config_defaults(struct agentd_config *c);

struct agentd;

/* Check the configuration (flags, secret file, commands, runtime) without starting. */
int agentd_check(const struct agentd_config *c, struct err *e);
struct agentd *agentd_new(const struct agentd_config *c, struct err *e);
/*
 * Serve until SIGTERM or SIGINT, then drain; SIGHUP re-reads the secret
 * file (a file that fails the checks keeps the current key). Installs the
 * signal handlers.
 */
int agentd_run(struct agentd *a, struct err *e);
/* The port actually bound (useful with port 0). */
int agentd_port(const struct agentd *a);
void agentd_free(struct agentd *a);

/*
 * "The instance is gone": SIGKILL every workspace process group recorded in
 * data_dir's state file (process runtime), for a local provider terminating
 * an instance. Stop the agent first, or it restarts them. Sets *killed.
 */
int agentd_kill_workspaces(const char *data_dir, int *killed, struct err *e);

#endif
