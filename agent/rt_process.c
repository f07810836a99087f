/* The "process" runtime: one supervised process group per workspace. */
#include "runtime.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmdtpl.h"
#include "../model/banned.h"

const char *const rt_process_placeholders[] = {
	"port", "dir", "id", "addr", "name", "image", NULL,
};

struct rt_process {
	char *command;
};

/*
 * The environment of a workspace process, built from scratch: the agent's
 * own holds secrets meant for its sync command (AWS_* credentials, paths
 * to secret files), and a workspace runs user code.
 */
#define WS_ENV_MAX 4                /* PATH HOME LANG TZ */
#define WS_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

struct ws_env {
	char *v[WS_ENV_MAX + 1];    /* NULL-terminated, for execve */
	size_t n;
};

static void ws_env_release(struct ws_env *env)
{
	size_t i;

	for (i = 0; i < env->n; i++)
		free(env->v[i]);
	env->n = 0;
	env->v[0] = NULL;
}

static int ws_env_add(struct ws_env *env, const char *name, const char *value, struct err *e)
{
	struct strbuf sb = STRBUF_INIT;

	assert(env->n < WS_ENV_MAX);
	if (strbuf_addf(&sb, "%s=%s", name, value) < 0) {
		strbuf_release(&sb);
		return err_set(e, SP_ENOMEM, "process runtime: out of memory");
	}
	env->v[env->n++] = strbuf_detach(&sb, NULL);
	env->v[env->n] = NULL;
	return 0;
}

/* PATH (the agent's, or a default), HOME = the workspace folder, LANG and TZ when set. */
static int ws_env_init(struct ws_env *env, const char *dir, struct err *e)
{
	static const char *const passed[] = { "LANG", "TZ" };
	const char *path = getenv("PATH");
	size_t i;
	int rc;

	env->n = 0;
	env->v[0] = NULL;
	rc = ws_env_add(env, "PATH", path && *path ? path : WS_DEFAULT_PATH, e);
	if (!rc)
		rc = ws_env_add(env, "HOME", dir, e);
	for (i = 0; !rc && i < sizeof(passed) / sizeof(passed[0]); i++)
		if (getenv(passed[i]))
			rc = ws_env_add(env, passed[i], getenv(passed[i]), e);
	if (rc)
		ws_env_release(env);
	return rc;
}

static void child_exec(const char *cmd, const char *dir, const char *log_path,
		       char *const envp[])
{
	char *const argv[] = { "sh", "-c", (char *)cmd, NULL };

	sigset_t none;
	int fd, sig;

	setsid();
	for (sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dir && chdir(dir) < 0)
		_exit(126);
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0 && fd != 0) {
		dup2(fd, 0);
		close(fd);
	}
	fd = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;
	if (fd < 0)
		fd = open("/dev/null", O_WRONLY);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
		for (fd = 3; fd < 1024; fd++)
			close(fd);
	execve("/bin/sh", argv, envp ? envp : environ);
	_exit(127);
}

int rt_spawn_shell(const char *cmd, const char *dir, const char *log_path, char *const envp[],
		   pid_t *pid, struct err *e)
{
	pid_t p = fork();

	if (p < 0)
		return err_set(e, SP_EIO, "could not fork: %s", strerror(errno));
	if (p == 0)
		child_exec(cmd, dir, log_path, envp);
	/* no setpgid(p, p) here: it would make the child's setsid() fail (EPERM) */
	*pid = p;
	return 0;
}

static int proc_start(void *st, const struct rt_spec *s, struct rt_handle *h, struct err *e)
{
	struct rt_process *rp = st;
	struct strbuf cmd = STRBUF_INIT;
	struct ws_env env;
	char port[16], id[24];
	int rc;

	snprintf(port, sizeof(port), "%d", s->port);
	snprintf(id, sizeof(id), "%lld", (long long)s->workspace_id);
	{
		const struct cmdtpl_var vars[] = {
			{ "port", port }, { "dir", s->dir }, { "id", id }, { "addr", s->addr },
			{ "name", s->name }, { "image", s->req ? s->req->image : "" },
		};

		rc = cmdtpl_expand(rp->command, vars, sizeof(vars) / sizeof(vars[0]), &cmd, e);
	}
	if (rc)
		goto out_cmd;
	rc = ws_env_init(&env, s->dir, e);
	if (rc)
		goto out_cmd;
	memset(h, 0, sizeof(*h));
	rc = rt_spawn_shell(cmd.buf, s->dir, s->log_path, env.v, &h->pid, e);
	ws_env_release(&env);
out_cmd:
	strbuf_release(&cmd);
	return rc;
}

/* A group leader started by an earlier agent still runs (and was not recycled). */
static int adopted_alive(pid_t pid)
{
	return kill(pid, 0) == 0 && getpgid(pid) == pid && getsid(pid) == pid;
}

static int proc_status(void *st, const struct rt_spec *s, struct rt_handle *h,
		       struct rt_status *out, struct err *e)
{
	(void)st;
	(void)s;
	(void)e;
	memset(out, 0, sizeof(*out));
	out->exit_code = -1;
	if (h->pid <= 0) {
		out->state = RT_GONE;
	} else if (h->exited) {
		out->state = RT_EXITED;
		if (WIFEXITED(h->exit_status)) {
			out->exit_code = WEXITSTATUS(h->exit_status);
			snprintf(out->message, sizeof(out->message), "workspace exited with status %d",
				 out->exit_code);
		} else if (WIFSIGNALED(h->exit_status)) {
			snprintf(out->message, sizeof(out->message), "workspace killed by signal %d",
				 WTERMSIG(h->exit_status));
		}
	} else if (h->adopted && !adopted_alive(h->pid)) {
		out->state = RT_EXITED;
		snprintf(out->message, sizeof(out->message),
			 "adopted workspace process %d is gone", (int)h->pid);
	} else {
		out->state = RT_RUNNING;
	}
	return 0;
}

static int proc_stop(void *st, const struct rt_spec *s, struct rt_handle *h, int force,
		     struct err *e)
{
	(void)st;
	(void)s;
	if (h->pid <= 0 || h->exited)
		return 0;
	if (h->adopted && !adopted_alive(h->pid))
		return 0;
	if (kill(-h->pid, force ? SIGKILL : SIGTERM) < 0 && errno != ESRCH)
		return err_set(e, SP_EIO, "could not signal workspace process group %d: %s",
			       (int)h->pid, strerror(errno));
	return 0;
}

static int proc_remove(void *st, const struct rt_spec *s, struct rt_handle *h, struct err *e)
{
	return proc_stop(st, s, h, 1, e);
}

static void proc_free(void *st)
{
	struct rt_process *rp = st;

	if (!rp)
		return;
	free(rp->command);
	free(rp);
}

static const struct runtime_ops proc_ops = {
	.name = "process",
	.start = proc_start,
	.status = proc_status,
	.stop = proc_stop,
	.remove = proc_remove,
	.free = proc_free,
};

struct runtime *rt_process_new(const struct rt_process_opts *o, struct err *e)
{
	struct runtime *r = NULL;
	struct rt_process *rp = NULL;

	if (!o->command || !*o->command) {
		err_set(e, SP_EINVAL, "process runtime: no workspace command");
		return NULL;
	}
	if (cmdtpl_check(o->command, rt_process_placeholders, e) < 0) {
		err_prefix(e, "workspace command");
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	rp = calloc(1, sizeof(*rp));
	if (!r || !rp || !(rp->command = strdup(o->command))) {
		err_set(e, SP_ENOMEM, "process runtime: out of memory");
		free(r);
		proc_free(rp);
		return NULL;
	}
	r->ops = &proc_ops;
	r->state = rp;
	return r;
}

void runtime_free(struct runtime *r)
{
	if (!r)
		return;
	if (r->ops && r->ops->free)
		r->ops->free(r->state);
	free(r);
}
