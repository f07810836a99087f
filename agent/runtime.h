/*
 * runtime.h - how the agent runs one workspace: the container runtime
 * interface, a table of function pointers plus opaque state.
 *
 *   "process"  agent/rt_process.c  fork/exec of a configured command per
 *              workspace, in its own process group (the demo and tests),
 *              with a minimal environment: PATH, HOME (the workspace
 *              folder), LANG and TZ; nothing else of the agent's
 *   "docker"   agent/rt_docker.c   Docker Engine API over its unix socket
 *
 * The agent core (agent.c) owns every container record and its rt_handle;
 * a runtime only acts on the handle it is given. Supervision (restart with
 * backoff) is the core's: it asks status() on a timer and, for the process
 * runtime, reaps children itself and records the exit in the handle.
 *
 * Calls may block (process: never; docker: each Engine API call for at
 * most timeout_ms, a graceful stop 10 s more, the inline pull after a
 * create that answers 404 up to 10 * timeout_ms). All return 0 or a negative
 * SP_E* code with detail in e. stop() and remove() of something already
 * gone succeed.
 */
#ifndef SPINUP_AGENT_RUNTIME_H
#define SPINUP_AGENT_RUNTIME_H

#include <stdint.h>
#include <sys/types.h>

#include "../model/err.h"
#include "../model/observed.h"
#include "../model/strbuf.h"

#define RT_ID_MAX 95

/* Everything needed to start one workspace. Strings are lent for the call. */
struct rt_spec {
	int64_t workspace_id;
	const char *name;        /* "spinup-<id>", the deterministic container name */
	const char *dir;         /* the workspace's files on this host */
	const char *addr;        /* the address the workspace listens on */
	int port;                /* the port it listens on */
	const char *log_path;    /* process: stdout and stderr are appended here */
	const struct container_req *req;
};

/* A runtime's handle on one started workspace; persisted in the state file. */
struct rt_handle {
	pid_t pid;               /* process: group leader (pgid == pid); 0 = none */
	int adopted;             /* process: started by an earlier agent, not our child */
	int exited;              /* process: reaped by the core */
	int exit_status;         /* process: waitpid status when exited */
	char id[RT_ID_MAX + 1];  /* docker: container id */
};

enum rt_state { RT_RUNNING, RT_EXITED, RT_GONE };

struct rt_status {
	enum rt_state state;
	int exit_code;           /* -1 when unknown */
	char message[OBS_MSG_MAX + 1];
};

struct runtime_ops {
	const char *name;
	int (*start)(void *st, const struct rt_spec *s, struct rt_handle *h, struct err *e);
	int (*status)(void *st, const struct rt_spec *s, struct rt_handle *h, struct rt_status *out,
		      struct err *e);
	/* Ask it to stop; force = kill now. */
	int (*stop)(void *st, const struct rt_spec *s, struct rt_handle *h, int force,
		    struct err *e);
	/* Kill and remove (the files in dir are the core's to remove). */
	int (*remove)(void *st, const struct rt_spec *s, struct rt_handle *h, struct err *e);
	/*
	 * Optional (may be NULL): a slow step to run before start, as a shell
	 * command appended to cmd (left empty when nothing is needed). The core
	 * runs it as a child process, so an image pull never blocks the agent.
	 */
	int (*prepare)(void *st, const struct rt_spec *s, struct strbuf *cmd, struct err *e);
	void (*free)(void *st);
};

struct runtime {
	const struct runtime_ops *ops;
	void *state;
};

struct rt_process_opts {
	const char *command;     /* template: {port} {dir} {id} {addr} {name} {image} */
};

struct rt_docker_opts {
	const char *socket_path; /* "/var/run/docker.sock" */
	const char *base_url;    /* "http://localhost/v1.43"; an http URL when socket_path is NULL */
	int container_port;      /* the port the image listens on (8080 for code-server) */
	const char *mount_point; /* where dir is mounted in the container */
	long timeout_ms;         /* per Engine API call */
	const char *self_exe;    /* this binary, for "docker-pull" jobs; NULL: pull inline */
};

/*
 * Pull image through the Engine API (blocking, up to timeout_ms): what the
 * "spinup-agent docker-pull" job runs. 0 or a negative SP_E* code.
 */
int rt_docker_pull(const struct rt_docker_opts *o, const char *image, long timeout_ms,
		   struct err *e);

/* New runtimes; NULL with e set on bad options or allocation failure. */
struct runtime *rt_process_new(const struct rt_process_opts *o, struct err *e);
struct runtime *rt_docker_new(const struct rt_docker_opts *o, struct err *e);
/* Free a runtime; accepts NULL. */
void runtime_free(struct runtime *r);

/*
 * Spawn "/bin/sh -c cmd" in a new session (its own process group, pgid ==
 * pid), cwd dir (NULL: unchanged), stdin /dev/null, stdout and stderr
 * appended to log_path, every other descriptor closed, signals reset.
 * envp (NULL-terminated "NAME=value" strings, lent) is its whole
 * environment; NULL passes the agent's own (restore and sync commands need
 * its credentials; workspaces never get it). Sets *pid; 0 or SP_EIO.
 */
int rt_spawn_shell(const char *cmd, const char *dir, const char *log_path, char *const envp[],
		   pid_t *pid, struct err *e);

/* Placeholders the process runtime's command may use (NULL-terminated). */
extern const char *const rt_process_placeholders[];

#endif
