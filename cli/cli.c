/* cli.c - helpers shared by spinctl's commands (see cmd.h). */
#include "cli/cmd.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "model/strbuf.h"
#include "model/banned.h"

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("spinctl: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("spinctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\ntry 'spinctl %s --help'\n", cmd ? cmd : "");
	return CLI_EXIT_USAGE;
}

int cli_open_store(const struct cli *g, int check_schema, struct pgstore **out)
{
	struct err e = ERR_INIT;
	struct pgstore *s = NULL;
	int rc;

	if (!g->db || !g->db[0]) {
		cli_error("no database given: set DATABASE_URL or pass --db URL");
		return SP_EINVAL;
	}
	rc = pgstore_open(g->db, "spinctl", &s, &e);
	if (!rc && check_schema)
		rc = pgstore_check_schema(s, &e);
	if (rc) {
		cli_error("%s", e.msg);
		pgstore_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ------------------------------------------------------------ manifests */

struct file_list {
	char **v;
	size_t n, alloc;
};

static int list_add(struct file_list *l, const char *path)
{
	char *p;

	if (l->n == CLI_MAX_FILES) {
		cli_error("more than %d manifest files", CLI_MAX_FILES);
		return -1;
	}
	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 16;
		void *nv = realloc(l->v, na * sizeof(*l->v));
		if (!nv)
			return -1;
		l->v = nv;
		l->alloc = na;
	}
	p = strdup(path);
	if (!p)
		return -1;
	l->v[l->n++] = p;
	return 0;
}

static void list_release(struct file_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int is_manifest_name(const char *name)
{
	size_t n = strlen(name);

	return (n > 5 && !strcmp(name + n - 5, ".yaml")) || (n > 4 && !strcmp(name + n - 4, ".yml"));
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Collect *.yaml / *.yml under dir, depth first, in name order. */
static int walk_dir(const char *dir, int depth, struct file_list *out)
{
	struct file_list names = { 0 };
	struct dirent *de;
	DIR *d;
	size_t i;
	int rc = 0;

	if (depth > CLI_MAX_DEPTH) {
		cli_error("%s: directories nested deeper than %d", dir, CLI_MAX_DEPTH);
		return -1;
	}
	d = opendir(dir);
	if (!d) {
		cli_error("cannot read directory %s: %s", dir, strerror(errno));
		return -1;
	}
	while (!rc && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		rc = list_add(&names, de->d_name);
	}
	closedir(d);
	if (names.n)
		qsort(names.v, names.n, sizeof(*names.v), name_cmp);
	for (i = 0; !rc && i < names.n; i++) {
		struct strbuf path = STRBUF_INIT;
		struct stat st;
		rc = strbuf_addf(&path, "%s/%s", dir, names.v[i]);
		if (!rc && lstat(path.buf, &st) == 0) {
			if (S_ISDIR(st.st_mode))
				rc = walk_dir(path.buf, depth + 1, out);
			else if (is_manifest_name(names.v[i]) && (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)))
				rc = list_add(out, path.buf);
		}
		strbuf_release(&path);
	}
	list_release(&names);
	return rc;
}

static int collect(const char *src, struct file_list *out)
{
	struct stat st;

	if (!strcmp(src, "-"))
		return list_add(out, "-");
	if (stat(src, &st) != 0) {
		cli_error("cannot read %s: %s", src, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		size_t before = out->n;
		int rc = walk_dir(src, 0, out);
		if (!rc && out->n == before) {
			cli_error("%s: no *.yaml or *.yml files found", src);
			return -1;
		}
		return rc;
	}
	return list_add(out, src);
}

/* Read a whole file (or stdin) up to MANIFEST_MAX_BYTES + 1 bytes. */
static int read_all(const char *path, struct strbuf *sb)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char buf[65536];
	size_t n;
	int rc = 0;

	if (!f) {
		cli_error("cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while (!rc && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (sb->len + n > MANIFEST_MAX_BYTES + 1)
			n = MANIFEST_MAX_BYTES + 1 - sb->len;
		rc = strbuf_add(sb, buf, n);
		if (sb->len > MANIFEST_MAX_BYTES)
			break;
	}
	if (!rc && ferror(f)) {
		cli_error("cannot read %s: %s", path, strerror(errno));
		rc = -1;
	}
	if (f != stdin)
		fclose(f);
	return rc;
}

static void print_diags(const struct diag_list *diags)
{
	struct strbuf sb = STRBUF_INIT;

	if (diag_list_format(diags, &sb) == 0)
		fputs(sb.buf, stderr);
	strbuf_release(&sb);
}

int cli_load_manifests(char *const *sources, size_t nsources, struct manifest_set *set)
{
	struct file_list files = { 0 };
	struct diag_list diags;
	size_t i;
	int rc = 0, bad = 0;

	diag_list_init(&diags);
	for (i = 0; !rc && i < nsources; i++)
		rc = collect(sources[i], &files);
	for (i = 0; !rc && i < files.n; i++) {
		struct strbuf sb = STRBUF_INIT;
		const char *name = strcmp(files.v[i], "-") ? files.v[i] : "<stdin>";
		rc = read_all(files.v[i], &sb);
		if (!rc) {
			int drc = manifest_decode(name, sb.buf, sb.len, set, &diags);
			if (drc == SP_ENOMEM) {
				cli_error("out of memory decoding %s", name);
				rc = -1;
			} else if (drc) {
				bad = 1;
			}
		}
		strbuf_release(&sb);
	}
	/* The set holds only documents that decoded cleanly: check it even when
	 * others failed, so one run reports every error. */
	if (!rc && manifest_check_set(set, &diags))
		bad = 1;
	if (!rc && (bad || diags.n || diags.dropped)) {
		print_diags(&diags);
		bad = 1;
	}
	if (!rc && !bad && set->n == 0) {
		cli_error("no documents found");
		rc = -1;
	}
	diag_list_release(&diags);
	list_release(&files);
	return (rc || bad) ? CLI_EXIT_ERROR : 0;
}

/* ------------------------------------------------------------ formatting */

void cli_print_quoted(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('"', f);
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

int64_t cli_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cli_format_age(int64_t ms, int64_t now_ms, char *out, size_t outsz)
{
	int64_t s;

	if (!ms) {
		snprintf(out, outsz, "-");
		return;
	}
	s = (now_ms - ms) / 1000;
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(out, outsz, "%llds", (long long)s);
	else if (s < 7200)
		snprintf(out, outsz, "%lldm", (long long)(s / 60));
	else if (s < 172800)
		snprintf(out, outsz, "%lldh", (long long)(s / 3600));
	else
		snprintf(out, outsz, "%lldd", (long long)(s / 86400));
}

void cli_format_time(int64_t ms, char *out, size_t outsz)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!ms || ms == INT64_MAX || !gmtime_r(&t, &tm)) {
		snprintf(out, outsz, ms == INT64_MAX ? "forever" : "-");
		return;
	}
	strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *cli_doc_kind(const struct manifest_doc *d)
{
	return d->kind == MANIFEST_POOL ? "pool" : "workspace";
}

const char *cli_doc_name(const struct manifest_doc *d)
{
	return d->kind == MANIFEST_POOL ? d->pool.name : d->ws.name;
}

void cli_print_change(FILE *f, const struct pgstore_change *c)
{
	fprintf(f, "  %s: ", c->field);
	if (c->old_value) {
		cli_print_quoted(f, c->old_value);
		fputs(" -> ", f);
	}
	cli_print_quoted(f, c->new_value ? c->new_value : "");
	if (c->owner[0])
		fprintf(f, "  (owner: %s%s)", c->owner, c->conflict ? ", conflict" : "");
	fputc('\n', f);
}

/* ------------------------------------------------------------ tables */

void cli_table_init(struct cli_table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

void cli_table_release(struct cli_table *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

int cli_table_add(struct cli_table *t, const char *cell)
{
	char *c;

	if (t->ncells == t->alloc) {
		size_t na = t->alloc ? t->alloc * 2 : 64;
		void *p = realloc(t->cells, na * sizeof(*t->cells));
		if (!p)
			return SP_ENOMEM;
		t->cells = p;
		t->alloc = na;
	}
	c = strdup(cell ? cell : "");
	if (!c)
		return SP_ENOMEM;
	t->cells[t->ncells++] = c;
	return 0;
}

void cli_table_print(const struct cli_table *t, FILE *f)
{
	size_t widths[32] = { 0 }, i, n;

	for (i = 0; i < t->ncells; i++) {
		n = strlen(t->cells[i]);
		if (i % t->ncols < 32 && n > widths[i % t->ncols])
			widths[i % t->ncols] = n;
	}
	for (i = 0; i < t->ncells; i++) {
		size_t col_ = i % t->ncols;
		int last = col_ == t->ncols - 1 || i == t->ncells - 1;
		if (last)
			fprintf(f, "%s\n", t->cells[i]);
		else
			fprintf(f, "%-*s   ", (int)(col_ < 32 ? widths[col_] : 0), t->cells[i]);
	}
}

void cli_apply_error(const struct manifest_set *set, const struct pgstore_apply_result *r,
		     const struct err *e)
{
	const struct manifest_doc *d;

	if (r->failed_doc < 0 || (size_t)r->failed_doc >= set->n) {
		cli_error("%s", e->msg);
		return;
	}
	d = &set->docs[r->failed_doc];
	fprintf(stderr, "%s:%d:%d: %s\n", d->file, d->line, d->col, e->msg);
}

/* "90s", "15m", "2h", "1d" -> a Postgres interval text "N seconds". */
int cli_parse_duration(const char *s, char *out, size_t outsz)
{
	char *end;
	long v;
	long mult;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || v <= 0 || v > 100000000)
		return -1;
	if (!strcmp(end, "s") || !*end)
		mult = 1;
	else if (!strcmp(end, "m"))
		mult = 60;
	else if (!strcmp(end, "h"))
		mult = 3600;
	else if (!strcmp(end, "d"))
		mult = 86400;
	else
		return -1;
	if (v > 100000000 / mult)
		return -1;
	snprintf(out, outsz, "%ld seconds", v * mult);
	return 0;
}

const char *cli_col(const PGresult *r, int i, const char *name)
{
	int c = PQfnumber(r, name);

	return c < 0 || PQgetisnull(r, i, c) ? "" : PQgetvalue(r, i, c);
}
