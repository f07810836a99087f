#include "agentfx.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "drivers/agenthttp.h"
#include "model/banned.h"

void agentfx_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const char *agentfx_bin(void)
{
	static char path[PATH_MAX];
	const char *dir = getenv("SPINUP_BIN_DIR");

	snprintf(path, sizeof(path), "%s/spinup-agent", dir && *dir ? dir : "bin");
	return path;
}

int agentfx_write(const char *path, const char *text, unsigned mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	ok &= fchmod(fd, (mode_t)mode) == 0;
	close(fd);
	return ok ? 0 : -1;
}

int agentfx_read(const char *path, struct strbuf *out)
{
	char buf[4096];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	strbuf_reset(out);
	if (fd < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		strbuf_add(out, buf, (size_t)n);
	close(fd);
	return 0;
}

int agentfx_free_port(const char *addr)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, addr, &sin.sin_addr);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

struct agentfx *agentfx_new(const char *addr)
{
	struct agentfx *f = calloc(1, sizeof(*f));
	char secret[65];
	unsigned i;

	if (!f)
		return NULL;
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/spinup-agentfx-XXXXXX");
	if (!mkdtemp(f->tmp)) {
		free(f);
		return NULL;
	}
	snprintf(f->addr, sizeof(f->addr), "%s", addr);
	snprintf(f->secret, sizeof(f->secret), "%s/secret", f->tmp);
	snprintf(f->data, sizeof(f->data), "%s/data", f->tmp);
	snprintf(f->bucket, sizeof(f->bucket), "%s/bucket", f->tmp);
	snprintf(f->log, sizeof(f->log), "%s/agent.log", f->tmp);
	mkdir(f->bucket, 0700);
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	for (i = 0; i < 64; i++)
		secret[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[rand() % 36];
	secret[64] = '\0';
	agentfx_write(f->secret, secret, 0600);
	f->port = agentfx_free_port(addr);
	snprintf(f->target.instance_id, sizeof(f->target.instance_id), "i-test%d", f->port);
	snprintf(f->target.address, sizeof(f->target.address), "%s", addr);
	f->target.port = f->port;
	return f;
}

static int port_open(const char *addr, int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, addr, &sin.sin_addr);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

int agentfx_start(struct agentfx *f, const char *const *extra)
{
	const char *argv[64];
	char listen[64];
	int n = 0, i, status;

	snprintf(listen, sizeof(listen), "%s:%d", f->addr, f->port);
	argv[n++] = agentfx_bin();
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--secret-file";
	argv[n++] = f->secret;
	argv[n++] = "--data-dir";
	argv[n++] = f->data;
	argv[n++] = "--id";
	argv[n++] = f->target.instance_id;
	for (i = 0; extra && extra[i] && n < 62; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	f->pid = fork();
	if (f->pid < 0)
		return -1;
	if (f->pid == 0) {
		int fd = open(f->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 200; i++) {
		if (port_open(f->addr, f->port))
			return 0;
		if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
			f->exit_status = status;
			f->pid = 0;
			return -1;
		}
		agentfx_sleep_ms(25);
	}
	return -1;
}

int agentfx_signal_wait(struct agentfx *f, int sig)
{
	int status, i;

	if (f->pid <= 0)
		return -1;
	kill(f->pid, sig);
	for (i = 0; i < 600; i++) {
		if (waitpid(f->pid, &status, WNOHANG) == f->pid) {
			f->pid = 0;
			f->exit_status = status;
			return status;
		}
		agentfx_sleep_ms(25);
	}
	kill(f->pid, SIGKILL);
	waitpid(f->pid, &status, 0);
	f->pid = 0;
	return -1;
}

/* Does process pid's command line mention path (a workspace's --dir does)? */
static int cmdline_mentions(long pid, const char *path)
{
	char file[64], buf[4096];
	ssize_t n, i;
	int fd;

	snprintf(file, sizeof(file), "/proc/%ld/cmdline", pid);
	fd = open(file, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	for (i = 0; i < n; i++)
		if (!buf[i])
			buf[i] = ' ';
	buf[n] = '\0';
	return strstr(buf, path) != NULL;
}

/*
 * Kill what the agent left: processes working under f->tmp or naming it on
 * their command line (a workspace forked just before the agent died may not
 * have changed directory yet). Twice, a little apart, for such late ones.
 */
static void kill_leftovers(const struct agentfx *f)
{
	char link[64], cwd[PATH_MAX];
	size_t tl = strlen(f->tmp);
	int round;

	for (round = 0; round < 2; round++) {
		DIR *d = opendir("/proc");
		struct dirent *de;
		ssize_t n;

		while (d && (de = readdir(d)) != NULL) {
			long pid = strtol(de->d_name, NULL, 10);

			if (pid <= 1 || pid == getpid())
				continue;
			snprintf(link, sizeof(link), "/proc/%ld/cwd", pid);
			n = readlink(link, cwd, sizeof(cwd) - 1);
			if (n > 0) {
				cwd[n] = '\0';
				if (!strncmp(cwd, f->tmp, tl) && (cwd[tl] == '/' || cwd[tl] == '\0')) {
					kill((pid_t)pid, SIGKILL);
					continue;
				}
			}
			if (cmdline_mentions(pid, f->tmp))
				kill((pid_t)pid, SIGKILL);
		}
		if (d)
			closedir(d);
		if (!round)
			agentfx_sleep_ms(50);
	}
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

void agentfx_free(struct agentfx *f)
{
	if (!f)
		return;
	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		waitpid(f->pid, NULL, 0);
	}
	kill_leftovers(f);
	agentfx_sleep_ms(20);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	if (getenv("AGENTFX_KEEP") == NULL)
		nftw(f->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
}

struct agentc *agentfx_client(const struct agentfx *f)
{
	struct agenthttp_opts o = { f->secret, 1000, 3000, 20000, 0 };

	return agenthttp_new(&o, NULL);
}

long agentfx_call(struct agentc *c, const struct agentfx *f, int64_t epoch, const char *method,
		  const char *path, const char *body, struct strbuf *resp)
{
	long status = -1;

	strbuf_reset(resp);
	if (agenthttp_request(c, &f->target, epoch, method, path, body, NULL, &status, resp,
			      NULL) < 0)
		return -1;
	return status;
}

static size_t sink(char *p, size_t s, size_t n, void *ud)
{
	strbuf_add(ud, p, s * n);
	return s * n;
}

long agentfx_plain(const char *method, const char *addr, int port, const char *path,
		   const char *body, struct strbuf *resp)
{
	char url[256];
	long status = -1;
	CURL *h = curl_easy_init();

	if (!h)
		return -1;
	strbuf_reset(resp);
	snprintf(url, sizeof(url), "http://%s:%d%s", addr, port, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	return status;
}
