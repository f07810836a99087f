#include "wsstub.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "../model/strbuf.h"
#include "../model/banned.h"

struct wsstub {
	const char *dir;
};

struct upload {
	struct strbuf body;
	int too_large;
};

static int name_ok(const char *n)
{
	size_t i, len = strlen(n);

	if (len == 0 || len > 128 || n[0] == '.')
		return 0;
	for (i = 0; i < len; i++)
		if (!(n[i] == '.' || n[i] == '-' || n[i] == '_' || (n[i] >= '0' && n[i] <= '9') ||
		      (n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z')))
			return 0;
	return 1;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     struct strbuf *sb)
{
	size_t len;
	char *buf = strbuf_detach(sb, &len);
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!buf)
		return MHD_NO;
	r = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(buf);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *msg)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s\n", msg);
	return reply(c, status, "text/plain", &sb);
}

static enum MHD_Result page(struct wsstub *w, struct MHD_Connection *c)
{
	struct strbuf sb = STRBUF_INIT;
	struct dirent *de;
	DIR *d = opendir(w->dir);
	int n = 0;

	strbuf_addstr(&sb, "<!doctype html>\n<html><head><title>workspace</title></head><body>\n"
		      "<h1>workspace files</h1>\n<ul>\n");
	while (d && (de = readdir(d)) != NULL && n < WSSTUB_FILES_MAX) {
		if (!name_ok(de->d_name))
			continue;   /* names we would have to escape are not ours */
		strbuf_addf(&sb, "<li><a href=\"/files/%s\">%s</a></li>\n", de->d_name,
			    de->d_name);
		n++;
	}
	if (d)
		closedir(d);
	strbuf_addf(&sb, "</ul>\n<p>%d files</p>\n</body></html>\n", n);
	return reply(c, 200, "text/html; charset=utf-8", &sb);
}

static enum MHD_Result get_file(struct wsstub *w, struct MHD_Connection *c, const char *name)
{
	struct strbuf sb;
	char path[PATH_MAX], buf[8192];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", w->dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return reply_text(c, 404, "no such file");
	strbuf_init(&sb, WSSTUB_FILE_MAX + 1);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (strbuf_add(&sb, buf, (size_t)n) < 0)
			break;
	close(fd);
	return reply(c, 200, "application/octet-stream", &sb);
}

static enum MHD_Result put_file(struct wsstub *w, struct MHD_Connection *c, const char *name,
				struct upload *u)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	int fd, ok;

	if (u->too_large)
		return reply_text(c, 413, "file too large");
	snprintf(path, sizeof(path), "%s/%s", w->dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", w->dir, name);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return reply_text(c, 500, "could not write file");
	ok = write(fd, u->body.buf, u->body.len) == (ssize_t)u->body.len;
	close(fd);
	if (!ok || rename(tmp, path) < 0) {
		unlink(tmp);
		return reply_text(c, 500, "could not write file");
	}
	return reply_text(c, 201, "written");
}

static enum MHD_Result on_req(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *data,
			      size_t *size, void **con_cls)
{
	struct wsstub *w = cls;
	struct upload *u = *con_cls;
	const char *name = !strncmp(url, "/files/", 7) ? url + 7 : NULL;

	(void)version;
	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return MHD_NO;
		strbuf_init(&u->body, WSSTUB_FILE_MAX + 1);
		*con_cls = u;
		return MHD_YES;
	}
	if (*size) {
		if (strbuf_add(&u->body, data, *size) < 0)
			u->too_large = 1;
		*size = 0;
		return MHD_YES;
	}
	if (!strcmp(url, "/") && !strcmp(method, "GET"))
		return page(w, c);
	if (name && !name_ok(name))
		return reply_text(c, 400, "bad file name");
	if (name && !strcmp(method, "GET"))
		return get_file(w, c, name);
	if (name && !strcmp(method, "PUT"))
		return put_file(w, c, name, u);
	return reply_text(c, 404, "not found");
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	struct upload *u = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (u) {
		strbuf_release(&u->body);
		free(u);
		*con_cls = NULL;
	}
}

int wsstub_run(const char *listen, const char *dir, struct err *e)
{
	struct wsstub w = { dir };
	struct sockaddr_in sin;
	struct MHD_Daemon *d;
	const char *colon = strrchr(listen, ':');
	char host[INET_ADDRSTRLEN];
	sigset_t set;
	char *end;
	long port;
	int sig;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (!colon || (size_t)(colon - listen) >= sizeof(host))
		return err_set(e, SP_EINVAL, "listen address '%s' is not ADDR:PORT", listen);
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || port < 1 || port > 65535 ||
	    inet_pton(AF_INET, host, &sin.sin_addr) != 1)
		return err_set(e, SP_EINVAL, "listen address '%s' is not IPv4ADDR:PORT", listen);
	sin.sin_port = htons((uint16_t)port);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);   /* before the server thread starts */
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
			     on_req, &w, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
			     MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
	if (!d)
		return err_set(e, SP_EIO, "could not listen on %s", listen);
	sigwait(&set, &sig);
	MHD_stop_daemon(d);
	return 0;
}
