/*
 * agentfx.h - test fixture: real spinup-agent processes on loopback.
 *
 * agentfx_new makes a private temp folder (secret file mode 0600, data dir,
 * a "bucket" folder for the cp-based sync/restore commands), picks a free
 * port on addr, and agentfx_start execs $SPINUP_BIN_DIR/spinup-agent there
 * with the given extra arguments, waiting until the port accepts.
 * agentfx_free kills the agent, every process whose working folder is inside
 * the temp folder (the workspaces the agent leaves running by design), and
 * removes the folder. Everything listens on 127.0.0.0/8 only.
 */
#ifndef SPINUP_TESTS_AGENTFX_H
#define SPINUP_TESTS_AGENTFX_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "drivers/agentc.h"
#include "model/strbuf.h"

struct agentfx {
	pid_t pid;
	int exit_status;             /* after agentfx_wait */
	char addr[32];
	int port;
	char tmp[PATH_MAX];          /* the private folder */
	char secret[PATH_MAX + 16];
	char data[PATH_MAX + 16];
	char bucket[PATH_MAX + 16];
	char log[PATH_MAX + 16];
	struct agent_target target;
};

/* A new fixture on addr ("127.0.0.5"); NULL on failure. */
struct agentfx *agentfx_new(const char *addr);
/* Start the agent with extra args (NULL-terminated, may be NULL). 0, or -1 if it did not come up. */
int agentfx_start(struct agentfx *f, const char *const *extra);
/* Send sig to the agent and wait for it; returns its exit status (waitpid form) or -1. */
int agentfx_signal_wait(struct agentfx *f, int sig);
/* Kill everything and remove the folder; accepts NULL. */
void agentfx_free(struct agentfx *f);

/* Path to the spinup-agent binary. */
const char *agentfx_bin(void);
/* A port nothing listens on right now, on addr. */
int agentfx_free_port(const char *addr);
/* A client for f's secret. */
struct agentc *agentfx_client(const struct agentfx *f);
/* Signed request; returns the HTTP status (or -1) and the body in resp (reset first). */
long agentfx_call(struct agentc *c, const struct agentfx *f, int64_t epoch, const char *method,
		  const char *path, const char *body, struct strbuf *resp);
/* Unsigned plain HTTP GET/PUT to addr:port path; returns status or -1. */
long agentfx_plain(const char *method, const char *addr, int port, const char *path,
		   const char *body, struct strbuf *resp);
/* Sleep ms milliseconds. */
void agentfx_sleep_ms(int ms);
/* Write a file (for secrets, flags); 0 or -1. */
int agentfx_write(const char *path, const char *text, unsigned mode);
/* Read a whole small file into resp (reset first); 0 or -1. */
int agentfx_read(const char *path, struct strbuf *out);

#endif
